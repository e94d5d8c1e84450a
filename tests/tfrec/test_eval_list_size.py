"""Evaluation lists are read whole: a valid / test list longer than ``preranking.eval_list_size`` is an error
that names the size needed (reader, ``tfrec train``, ``tfrec evaluate``), never a silent truncation; training
lists keep their padding / truncation to ``preranking.train_list_size``."""

import numpy as np
import pytest
import tensorflow as tf

from tests.support.hccp_files import write_listwise_dataset
from tfrec.cli import main
from tfrec.data import split_files
from tfrec.features import HCCP
from tfrec.listwise_data import MASK, TOO_LONG, longest_list, make_listwise_dataset

VALID_LIST = 13  # hccp_files: 3 impressions, 2 N2, 2 N3, 6 N5 per valid / test list; 9 items per train list
TRAIN_LIST = 9
MODEL = ["train.epochs=1", "train.steps_per_epoch=2", "train.replicas=1", "train.log_every_seconds=0",
         "model.name=three_tower", "model.hash_bins=64", "model.embedding_dim=4", "model.num_experts=2",
         "model.expert_units=[8]", "model.item_units=[8]", "model.cross_units=[4]", "model.output_dim=4",
         "preranking.train_list_size=12", "data.batch_size=8", "data.eval_batch_size=8",
         "preranking.hit_ks=[5]", "preranking.consistency_ks=[5]", "preranking.octile_k=5"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_listwise_dataset(str(tmp_path_factory.mktemp("lists") / "data"))


def _batches(data, split, list_size, training):
    ds = make_listwise_dataset(split_files(data, split), HCCP, 8, list_size, training=training)
    return [features for features, _ in ds]


def test_longest_list(data):
    assert longest_list(split_files(data, "valid"), HCCP) == VALID_LIST
    assert longest_list(split_files(data, "train"), HCCP) == TRAIN_LIST


def test_eval_reader_fails_on_a_longer_list_and_keeps_whole_ones_unchanged(data):
    with pytest.raises(tf.errors.InvalidArgumentError, match=TOO_LONG):
        _batches(data, "valid", VALID_LIST - 1, training=False)
    for size in (VALID_LIST, VALID_LIST + 3):
        got = _batches(data, "valid", size, training=False)
        raw = tf.data.TFRecordDataset(split_files(data, "valid"), compression_type="GZIP").batch(8)
        want = [HCCP.parse(s, list_size=size, mask_feature_name=MASK) for s in raw]
        assert len(got) == len(want) == 1
        for k, v in want[0].items():
            a, b = (tf.sparse.to_dense(x, default_value="") if isinstance(x, tf.SparseTensor) else x
                    for x in (v, got[0][k]))
            np.testing.assert_array_equal(b.numpy(), a.numpy(), err_msg=k)
        assert got[0][MASK].shape == (8, size)


def test_train_reader_still_truncates(data):
    batches = _batches(data, "train", TRAIN_LIST - 2, training=True)
    assert batches and all(b[MASK].shape[1] == TRAIN_LIST - 2 and bool(tf.reduce_all(b[MASK])) for b in batches)


def test_cli_names_the_size_needed(data, tmp_path, capsys):
    run = str(tmp_path / "run")
    short = f"preranking.eval_list_size={VALID_LIST - 1}"
    sets = [a for s in MODEL for a in ("--set", s)]
    assert main(["train", "--data", data, "--model-dir", run, *sets, "--set", short]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"preranking.eval_list_size={VALID_LIST} or more" in err[0] and "valid" in err[0], err
    assert main(["train", "--data", data, "--model-dir", run, *sets,
                 "--set", f"preranking.eval_list_size={VALID_LIST}"]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--data", data, "--model-dir", run, "--split", "test", *sets, "--set", short]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"preranking.eval_list_size={VALID_LIST} or more" in err[0] and "test" in err[0], err
