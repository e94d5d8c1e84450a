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
    cfg = run_config(_args(files, custom_config={"model": {"name": "three_tower", "output_dim": 4},
                                                 "preranking": {"eval_list_size": 72}}))
    assert cfg.model.output_dim == 4 and cfg.preranking.eval_list_size == 72


def test_fn_args_errors(tmp_path):
    with pytest.raises(ValueError, match="train_files is empty"):
        run_config(_args([]))
    with pytest.raises(ValueError, match="one dataset directory"):
        run_config(_args([str(tmp_path / "a" / "train-0.gz"), str(tmp_path / "b" / "train-0.gz")]))
    with pytest.raises(ConfigError, match="unknown config key `train.nope`"):
        run_config(_args([str(tmp_path / "train-0.gz")], custom_config={"train": {"nope": 1}}))


# --------------------------------------------------------------------------- TFX's Examples layout (stock Trainer)

TINY = {"data": {"batch_size": 64, "eval_batch_size": 256, "shuffle_buffer": 0},
        "model": {"dnn_hidden_units": [4], "num_cross_layers": 1, "embedding_dim": 2, "dropout": 0.0},
        "train": {"epochs": 1, "replicas": 1, "log_every_seconds": 0}}


def _tfx_examples(prepared, examples):
    """The Examples artifact a stock ImportExampleGen writes from ``tfrec prepare`` output: ``Split-<name>/``
    directories of GZIP TFRecords named ``data_tfrecord-*.gz``, and no side files."""
    import shutil

    for split in ("train", "valid", "test"):
        os.makedirs(examples / f"Split-{split}")
        for i, f in enumerate(sorted((prepared).glob(f"{split}-*.tfrecord.gz"))):
            shutil.copy(f, examples / f"Split-{split}" / f"data_tfrecord-{i:05d}-of-00001.gz")
    return examples


def _tfx_args(examples, tmp_path, custom_config):
    """FnArgs as TFX's Trainer fills them: file patterns of the Split directories, its own output directories."""
    return FnArgs(train_files=[str(examples / "Split-train" / "*")], eval_files=[str(examples / "Split-valid" / "*")],
                  train_steps=4, eval_steps=1, serving_model_dir=str(tmp_path / "model" / "Format-Serving"),
                  model_run_dir=str(tmp_path / "model_run"), custom_config=custom_config)


def test_tfx_layout_finds_the_side_files_through_custom_config(tmp_path):
    """Stock ImportExampleGen over `tfrec prepare` output: the side files come from custom_config["dataset_dir"]
    and the data from TFX's Split-train/* and Split-valid/* patterns (the view links both)."""
    from tests.conftest import write_prepared_dataset

    from tfrec import data as data_lib

    prepared = tmp_path / "prepared"
    write_prepared_dataset(str(prepared), rows_per_split=(64, 32, 32))
    examples = _tfx_examples(prepared, tmp_path / "examples")
    cfg = run_config(_tfx_args(examples, tmp_path, {**TINY, "dataset_dir": str(prepared)}))
    view = cfg.data.dir
    assert view == str(tmp_path / "model_run" / "dataset")
    assert data_lib.load_schema(view).label == "label" and os.path.isdir(os.path.join(view, "vocab"))
    for split in ("train", "valid", "test"):  # test comes from the artifact's Split-test
        (linked,) = data_lib.split_files(view, split)
        assert os.path.realpath(linked) == str(examples / f"Split-{split}" / "data_tfrecord-00000-of-00001.gz")
    assert cfg.train.steps_per_epoch == 4 and cfg.train.validation_steps == 1


def test_tfx_layout_without_side_files_names_the_custom_config_key(tmp_path):
    from tests.conftest import write_prepared_dataset

    prepared = tmp_path / "prepared"
    write_prepared_dataset(str(prepared), rows_per_split=(8, 8, 8))
    examples = _tfx_examples(prepared, tmp_path / "examples")
    with pytest.raises(ValueError, match=r"schema.json not found .*custom_config\['dataset_dir'\]"):
        run_config(_tfx_args(examples, tmp_path, TINY))
    with pytest.raises(ValueError, match="has no schema.json"):
        run_config(_tfx_args(examples, tmp_path, {"dataset_dir": str(examples)}))


def test_tfx_layout_with_side_files_in_the_artifact_needs_no_custom_config(tmp_path):
    """tfrec's ExampleGen components write the side files into the Examples artifact's root."""
    import shutil

    from tests.conftest import write_prepared_dataset

    prepared = tmp_path / "prepared"
    write_prepared_dataset(str(prepared), rows_per_split=(8, 8, 8))
    examples = _tfx_examples(prepared, tmp_path / "examples")
    for name in ("schema.json", "stats.json", "transform.json", "vocab"):
        (shutil.copytree if name == "vocab" else shutil.copy)(prepared / name, examples / name)
    cfg = run_config(_tfx_args(examples, tmp_path, TINY))
    assert os.path.realpath(os.path.join(cfg.data.dir, "schema.json")) == str(examples / "schema.json")


def test_run_fn_trains_and_exports_from_tfx_layout(tmp_path):
    """run_fn under a stock Trainer's arguments: trains on the Split files and exports tfrec's signatures and
    warmup records to fn_args.serving_model_dir (it failed with "schema.json not found in .../Split-train")."""
    import tensorflow as tf
    from tests.conftest import write_prepared_dataset

    from tfrec.trainer_module import run_fn

    prepared = tmp_path / "prepared"
    write_prepared_dataset(str(prepared), rows_per_split=(128, 64, 64))
    examples = _tfx_examples(prepared, tmp_path / "examples")
    args = _tfx_args(examples, tmp_path, {**TINY, "dataset_dir": str(prepared)})
    run_fn(args)
    serving = args.serving_model_dir
    assert os.path.exists(os.path.join(serving, "assets.extra", "tf_serving_warmup_requests"))
    loaded = tf.saved_model.load(serving)
    assert {"serving_default", "predict_raw", "classification", "regression"} <= set(loaded.signatures)
    test_files = sorted(str(p) for p in (examples / "Split-test").iterdir())
    records = [r.numpy() for r in tf.data.TFRecordDataset(test_files, "GZIP").take(4)]
    out = loaded.signatures["serving_default"](examples=tf.constant(records))["ctr"].numpy()
    assert out.shape == (4,) and ((out > 0) & (out < 1)).all()
