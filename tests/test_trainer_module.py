"""tfrec's Trainer module: FnArgs (TFX's names) -> the RunConfig tfrec trains with."""

import os

import pytest

from tfrec.config import ConfigError
from tfrec.trainer_module import FnArgs, run_config


def _args(files, **kw):
    base = dict(train_files=files, eval_files=[], train_steps=0, eval_steps=0, serving_model_dir="/s",
                model_run_dir="/m", custom_config={"train": {"epochs": 3}, "data": {"batch_size": 64}})
    return FnArgs(**{**base, **kw})


def test_fn_args_map_onto_the_run_config(tmp_path):
    files = [str(tmp_path / "train-00000-of-00002.tfrecord.gz"), str(tmp_path / "train-00001-of-00002.tfrecord.gz")]
    cfg = run_config(_args(files, train_steps=10, eval_steps=4))
    assert cfg.data.dir == str(tmp_path) and cfg.train.model_dir == "/m" and cfg.data.batch_size == 64
    assert cfg.train.epochs == 3 and cfg.train.steps_per_epoch == 4  # ceil(10 / 3)
    assert cfg.train.validation_steps == 4
    default = run_config(_args(files))
    assert default.train.steps_per_epoch == 0 and default.train.validation_steps == 0


def test_the_preranking_section_travels(tmp_path):
    files = [str(tmp_path / "train-00000-of-00001.tfrecord.gz")]
    cfg = run_config(_args(files, custom_config={"preranking": {"output_dim": 4, "eval_list_size": 72}}))
    assert cfg.preranking.output_dim == 4 and cfg.preranking.eval_list_size == 72


def test_fn_args_errors(tmp_path):
    with pytest.raises(ValueError, match="train_files is empty"):
        run_config(_args([]))
    with pytest.raises(ValueError, match="one dataset directory"):
        run_config(_args([str(tmp_path / "a" / "train-0.gz"), str(tmp_path / "b" / "train-0.gz")]))
    with pytest.raises(ConfigError, match="unknown config key `train.nope`"):
        run_config(_args([str(tmp_path / "train-0.gz")], custom_config={"train": {"nope": 1}}))
