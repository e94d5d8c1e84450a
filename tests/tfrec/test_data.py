"""The tf.data reader: batch-then-parse, labels and weights split out, per-replica batches, errors."""

import numpy as np
import pytest
import tensorflow as tf

from tfrec import data as data_lib
from tfrec.devices import make_strategy
from tfrec.features import CRITEO


def test_reader_returns_features_label_weight(tiny_dataset):
    files = data_lib.split_files(tiny_dataset, "train")
    ds = data_lib.make_dataset(files, CRITEO, 100, training=False)
    batches = list(ds)
    assert [int(b[1].shape[0]) for b in batches] == [100] * 5 + [12]  # 512 rows, last partial batch kept
    features, label, weight = batches[0]
    assert set(features) == set(CRITEO.feature_names) and "label" not in features and "weight" not in features
    assert features["I1"].dtype == tf.float32 and features["C1"].dtype == tf.string
    # beta_pos = 0.5 on positives, 1 on negatives
    np.testing.assert_allclose(weight.numpy(), np.where(label.numpy() == 1, 0.5, 1.0))
    # missing values: NaN for dense, "" for categorical
    all_i2 = np.concatenate([b[0]["I2"].numpy() for b in batches])
    all_c2 = np.concatenate([b[0]["C2"].numpy() for b in batches])
    assert np.isnan(all_i2).any() and (all_c2 == b"").any()


def test_training_drops_remainder_and_shuffles_deterministically(tiny_dataset):
    files = data_lib.split_files(tiny_dataset, "train")
    a = data_lib.make_dataset(files, CRITEO, 100, training=True, shuffle_buffer=512, seed=7)
    b = data_lib.make_dataset(files, CRITEO, 100, training=True, shuffle_buffer=512, seed=7)
    first_a, first_b = list(a), list(b)  # one pass each (every pass reshuffles)
    assert [len(x[1]) for x in first_a] == [100] * 5
    ia = np.concatenate([x[0]["I1"].numpy() for x in first_a])
    ib = np.concatenate([x[0]["I1"].numpy() for x in first_b])
    np.testing.assert_array_equal(np.nan_to_num(ia, nan=-9), np.nan_to_num(ib, nan=-9))


def test_per_replica_batch_from_input_context(tiny_dataset):
    strategy = make_strategy(2)
    ds = data_lib.distributed_dataset(strategy, tiny_dataset, "train", CRITEO, 64, training=True)
    features, label, weight = next(iter(ds))
    per_replica = strategy.experimental_local_results(label)
    assert len(per_replica) == 2 and all(int(t.shape[0]) == 32 for t in per_replica)


@pytest.mark.parametrize("copies", [1, 2])
def test_input_pipelines_split_the_records_disjointly(tiny_dataset, copies):
    # 1 file for 2 workers: records are sharded; 2 files (the same one twice): files are. Either way the two
    # workers' records partition the input.
    files = data_lib.split_files(tiny_dataset, "train") * copies

    def rows(pipeline):
        ctx = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline, num_replicas_in_sync=2)
        out = []
        for features, _, _ in data_lib.make_dataset(files, CRITEO, 64, training=False, input_context=ctx):
            out += [(c1, i1) for c1, i1 in zip(features["C3"].numpy(), np.nan_to_num(features["I1"].numpy(), nan=-9))]
        return out

    a, b = rows(0), rows(1)
    assert len(a) + len(b) == 512 * copies and len(a) > 0 and len(b) > 0
    whole = [(c1, i1) for f, _, _ in data_lib.make_dataset(files, CRITEO, 64, training=False)
             for c1, i1 in zip(f["C3"].numpy(), np.nan_to_num(f["I1"].numpy(), nan=-9))]
    assert sorted(a + b) == sorted(whole)
    if copies == 1:
        assert abs(len(a) - len(b)) <= 1  # every other record


def test_missing_dataset_errors_name_the_path(tmp_path):
    with pytest.raises(data_lib.DatasetError, match=str(tmp_path / "nowhere")):
        data_lib.split_files(str(tmp_path / "nowhere"), "train")
    with pytest.raises(data_lib.DatasetError, match="no train shards"):
        data_lib.split_files(str(tmp_path), "train")
    with pytest.raises(data_lib.DatasetError, match="schema.json not found"):
        data_lib.load_schema(str(tmp_path))
