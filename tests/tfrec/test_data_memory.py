"""The in-memory training reader: the same rows as the streamed reader, one permutation per pass, seeded."""

import collections
import os

import numpy as np
import pytest

from tfrec import data as data_lib
from tfrec.config import load_config
from tfrec import data_memory
from tfrec.devices import make_strategy
from tfrec.features import CRITEO
from tests.support import ROOT

ROWS = 512  # the tiny dataset's train split
BUDGET = 1 << 30


def row_keys(batches):
    """One hashable key per row (every feature, the label and the weight), in batch order."""
    keys = []
    for features, label, weight in batches:
        columns = [np.nan_to_num(features[name].numpy(), nan=-9.0) for name in CRITEO.feature_names]
        columns += [label.numpy(), weight.numpy()]
        keys += list(zip(*columns))
    return keys


def streamed_rows(files):
    return collections.Counter(row_keys(data_lib.make_dataset(files, CRITEO, 100, training=False)))


def memory_dataset(files, seed=7, batch=64, repeat=True, **kw):
    return data_lib.make_dataset(files, CRITEO, batch, training=True, shuffle_buffer=1000, seed=seed,
                                 repeat=repeat, in_memory_max_bytes=BUDGET, rows=ROWS, **kw)


def test_each_epoch_is_a_permutation_of_the_streamed_rows(tiny_dataset):
    files = data_lib.split_files(tiny_dataset, "train")
    whole = streamed_rows(files)
    assert sum(whole.values()) == ROWS
    keys = row_keys(memory_dataset(files).take(2 * ROWS // 64))  # two passes of 8 batches
    first, second = keys[:ROWS], keys[ROWS:]
    # every row once per pass, with its label and weight: the streamed reader's multiset
    assert collections.Counter(first) == whole and collections.Counter(second) == whole
    assert first != second  # each pass is shuffled anew
    assert first != [k for k in row_keys(data_lib.make_dataset(files, CRITEO, 100, training=False))]


def test_same_seed_same_order_other_seed_other_order(tiny_dataset):
    files = data_lib.split_files(tiny_dataset, "train")
    a = row_keys(memory_dataset(files, seed=7).take(16))
    b = row_keys(memory_dataset(files, seed=7).take(16))
    c = row_keys(memory_dataset(files, seed=8).take(16))
    assert a == b and a != c and collections.Counter(a) == collections.Counter(c)


def test_one_pass_per_iteration_drops_the_remainder_and_reshuffles(tiny_dataset):
    files = data_lib.split_files(tiny_dataset, "train")
    ds = memory_dataset(files, batch=100, repeat=False)
    first, second = list(ds), list(ds)
    assert [int(b[1].shape[0]) for b in first] == [100] * 5 == [int(b[1].shape[0]) for b in second]
    whole = streamed_rows(files)
    for keys in (row_keys(first), row_keys(second)):
        assert len(set(keys)) == 500 and all(k in whole for k in keys)
    assert row_keys(first) != row_keys(second)


def test_the_budget_chooses_the_path(tiny_dataset, monkeypatch):
    files = data_lib.split_files(tiny_dataset, "train")
    per_row = 8 + (len(CRITEO.dense) + 2) * 4 + len(CRITEO.categorical) * data_memory.BYTES_PER_STRING
    spec = CRITEO.parse_spec(with_label=True)
    assert data_memory.estimated_bytes(spec, ROWS) == ROWS * per_row
    assert data_memory.fits(spec, ROWS, ROWS * per_row) and not data_memory.fits(spec, ROWS, ROWS * per_row - 1)
    assert not data_memory.fits(spec, 0, BUDGET)  # unknown row count: stream

    loads = []
    real_load = data_memory.load
    monkeypatch.setattr(data_memory, "load", lambda *a, **k: loads.append(1) or real_load(*a, **k))
    for budget in (0, ROWS * per_row - 1):  # 0 always streams; a split over the budget streams
        ds = data_lib.make_dataset(files, CRITEO, 64, training=True, shuffle_buffer=0, seed=1,
                                   in_memory_max_bytes=budget, rows=ROWS)
        assert collections.Counter(row_keys(ds)) == collections.Counter(row_keys(
            data_lib.make_dataset(files, CRITEO, 64, training=True, shuffle_buffer=0, seed=1)))
    assert loads == []
    data_lib.make_dataset(files, CRITEO, 64, training=True, in_memory_max_bytes=ROWS * per_row, rows=ROWS)
    assert loads == [1]


def test_weights_are_kept_and_beta_pos_overrides_them(tiny_dataset):
    files = data_lib.split_files(tiny_dataset, "train")
    for beta_pos, expected_pos in ((None, 0.5), (0.25, 0.25)):  # prepared with beta_pos 0.5
        labels, weights = [], []
        for _, label, weight in memory_dataset(files, beta_pos=beta_pos).take(8):
            labels.append(label.numpy())
            weights.append(weight.numpy())
        labels, weights = np.concatenate(labels), np.concatenate(weights)
        assert 0 < labels.sum() < ROWS
        np.testing.assert_allclose(weights, np.where(labels == 1, expected_pos, 1.0))


def test_negative_sampling_keeps_the_streamed_records(tiny_dataset):
    files = data_lib.split_files(tiny_dataset, "train")
    streamed = row_keys(data_lib.make_dataset(files, CRITEO, 1000, training=False, seed=3,
                                              negative_keep_ratio=0.5).take(1))
    # the same records are kept (the filter runs on the records before they are parsed into memory), once
    filtered = data_lib.make_dataset(files, CRITEO, 1, training=True, shuffle_buffer=1000, seed=3,
                                     negative_keep_ratio=0.5, in_memory_max_bytes=BUDGET, rows=ROWS)
    got = row_keys(filtered)
    assert collections.Counter(got) == collections.Counter(streamed) and 0 < len(got) < ROWS


def test_two_replicas_split_each_pass(tiny_dataset):
    strategy = make_strategy(2)
    ds = data_lib.distributed_dataset(strategy, tiny_dataset, "train", CRITEO, 64, training=True,
                                      shuffle_buffer=1000, seed=5, repeat=True, in_memory_max_bytes=BUDGET,
                                      rows=ROWS)
    whole = streamed_rows(data_lib.split_files(tiny_dataset, "train"))
    it = iter(ds)
    keys = []
    for _ in range(ROWS // 64):  # one pass
        features, label, weight = next(it)
        labels, weights = strategy.experimental_local_results(label), strategy.experimental_local_results(weight)
        columns = {name: strategy.experimental_local_results(t) for name, t in features.items()}
        assert [int(t.shape[0]) for t in labels] == [32, 32]
        for r in range(2):
            keys += row_keys([({name: c[r] for name, c in columns.items()}, labels[r], weights[r])])
    assert collections.Counter(keys) == whole


@pytest.mark.parametrize("budget_mb", [0, 1024])
def test_config_field(budget_mb):
    cfg = load_config(os.path.join(ROOT, "configs", "criteo_x1.yaml"),
                      [f"data.in_memory_max_mb={budget_mb}"])
    assert cfg.data.in_memory_max_mb == budget_mb


def _model(tiny_dataset):
    """A DCN V2 built and compiled as the driver does (tfrec.train.train_rows), at a fixed initialisation."""
    import tf_keras as keras

    from tfrec.families.registry import get as family
    from tfrec.train import _example_batch, build_model

    cfg = load_config(None, [f"data.dir={tiny_dataset}", "model.dnn_hidden_units=[16, 8]"])
    keras.utils.set_random_seed(3)
    model = build_model(cfg)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=family("pointwise").keras_loss(cfg))
    model(_example_batch(cfg, CRITEO), training=False)
    return model


def test_encoded_batches_are_the_raw_batches_encoded(tiny_dataset):
    from tfrec.layers.embedding import ENCODED_DENSE, ENCODED_IDS

    files = data_lib.split_files(tiny_dataset, "train")
    emb = _model(tiny_dataset).embedding
    raw = list(memory_dataset(files, repeat=False))
    enc = list(memory_dataset(files, repeat=False, encode=emb.encode))
    assert len(raw) == len(enc) == ROWS // 64
    for (f, y, w), (e, ye, we) in zip(raw, enc):
        assert sorted(e) == sorted([ENCODED_DENSE, ENCODED_IDS])  # no raw column is carried
        np.testing.assert_array_equal(e[ENCODED_IDS].numpy(), emb.categorical_ids(f).numpy())
        # Equal to float32 rounding: the vectorised log1p may round a value 1 ulp apart at another position of its
        # tensor (a whole split's column vs a batch's).
        np.testing.assert_allclose(e[ENCODED_DENSE].numpy(), emb.dense_values(f).numpy(), rtol=3e-7, atol=0)
        np.testing.assert_array_equal(ye.numpy(), y.numpy())
        np.testing.assert_array_equal(we.numpy(), w.numpy())
        np.testing.assert_allclose(emb(e).numpy(), emb(f).numpy(), rtol=3e-7, atol=1e-12)  # call takes either form
    # Chunked encoding (the split encoded 100 rows at a time) is the same.
    loaded = data_memory.load(data_lib.sharded_records(files, None, False, None, 4),
                              lambda s: data_lib.parse_batch(s, CRITEO))
    whole, chunked = data_memory.encoded(loaded, emb.encode), data_memory.encoded(loaded, emb.encode, chunk=100)
    for a, b in zip(tf_flat(whole), tf_flat(chunked)):
        np.testing.assert_allclose(a, b, rtol=3e-7, atol=0)
    np.testing.assert_array_equal(whole[0][ENCODED_IDS].numpy(), chunked[0][ENCODED_IDS].numpy())


def tf_flat(structure):
    import tensorflow as tf

    return [t.numpy() for t in tf.nest.flatten(structure)]


def test_training_on_encoded_batches_is_training_on_raw_batches(tiny_dataset):
    files = data_lib.split_files(tiny_dataset, "train")
    a, b = _model(tiny_dataset), _model(tiny_dataset)
    b.set_weights(a.get_weights())
    a.fit(memory_dataset(files), steps_per_epoch=6, epochs=1, verbose=0)
    b.fit(memory_dataset(files, encode=b.embedding.encode), steps_per_epoch=6, epochs=1, verbose=0)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-6, atol=1e-7)
    assert any(not np.allclose(w0, w1) for w0, w1 in zip(a.get_weights(), _model(tiny_dataset).get_weights()))
