"""Gradient diagnostics (KDD 2024 Fig. 2, 3, 9): NumPy oracles of the helpers, the diagnostic train step against
hand-computed gradients, 2 replicas == 1 device, the callback's CSV / TensorBoard output and the config switch."""

import csv
import glob
import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tfrec import data as data_lib
from tfrec import losses
from tfrec.callbacks import GradientDiagnostics
from tfrec.config import ConfigError, load_config
from tfrec.devices import make_strategy
from tfrec.features import CRITEO
from tfrec.metrics import gradients as G
from tfrec.train import build_model, train

QS = (0, 10, 25, 33.3, 50, 90, 100)


# ------------------------------------------------------------------------------------------- helpers


@pytest.mark.parametrize("n", [1, 2, 7, 1000])
def test_masked_percentiles_match_numpy(n):
    rng = np.random.default_rng(n)
    values = rng.lognormal(-6, 2, n).astype(np.float32)
    values[: n // 3] = values[0]  # ties
    mask = rng.random(n) < 0.6
    mask[0] = True
    got = G.masked_percentiles(tf.constant(values), tf.constant(mask), QS).numpy()
    want = np.percentile(values[mask].astype(np.float64), QS)
    np.testing.assert_allclose(got, want.astype(np.float32), rtol=1e-6)
    np.testing.assert_allclose(G.masked_mean(values, mask).numpy(), values[mask].astype(np.float64).mean(),
                               rtol=1e-6)


def test_masked_percentiles_dynamic_shape_and_empty():
    fn = tf.function(lambda v, m: G.masked_percentiles(v, m, (10, 50, 90)),
                     input_signature=[tf.TensorSpec([None], tf.float32), tf.TensorSpec([None], tf.bool)])
    v = np.array([3.0, 1.0, 2.0, 10.0, -5.0], np.float32)
    m = np.array([True, True, False, True, False])
    np.testing.assert_allclose(fn(v, m).numpy(), np.percentile(v[m], (10, 50, 90)), rtol=1e-6)
    assert np.all(np.isnan(fn(v, np.zeros(5, bool)).numpy()))
    assert np.all(np.isnan(fn(np.zeros(0, np.float32), np.zeros(0, bool)).numpy()))
    assert np.isnan(G.masked_mean(tf.zeros([0]), tf.zeros([0], tf.bool)).numpy())
    with pytest.raises(ValueError, match="percentiles"):
        G.masked_percentiles(v, m, (101,))


def test_gradient_norm_dense_sparse_and_none():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 3)).astype(np.float32)
    rows = rng.normal(size=(5, 2)).astype(np.float32)
    idx = np.array([3, 1, 3, 0, 3])  # repeated rows are summed first
    dense = np.zeros((6, 2), np.float32)
    np.add.at(dense, idx, rows)
    sparse = tf.IndexedSlices(tf.constant(rows), tf.constant(idx), tf.constant([6, 2]))
    np.testing.assert_allclose(G.gradient_norm(sparse).numpy(), np.linalg.norm(dense), rtol=1e-6)
    want = np.sqrt(np.sum(a.astype(np.float64) ** 2) + np.sum(dense.astype(np.float64) ** 2))
    np.testing.assert_allclose(G.gradient_norm([tf.constant(a), None, sparse]).numpy(), want, rtol=1e-6)
    assert G.gradient_norm(None).numpy() == 0.0


def test_log_histogram_matches_numpy():
    rng = np.random.default_rng(3)
    v = np.concatenate([10.0 ** rng.uniform(-11, 0, 500), [0.0, 1e-12, 0.5, 3.0]])
    mask = rng.random(v.size) < 0.8
    mask[-4:] = True
    edges = G.histogram_edges()
    assert len(edges) == G.HIST_BINS + 1 and edges[0] == pytest.approx(1e-10) and edges[-1] == pytest.approx(0.1)
    # Out-of-range values go to the end bins (zero, 1e-12 to the first; 0.5, 3.0 to the last).
    want = np.histogram(np.clip(v[mask], edges[0], np.nextafter(edges[-1], 0)), bins=edges)[0]
    got = G.log_histogram(tf.constant(v, tf.float32), tf.constant(mask)).numpy()
    np.testing.assert_array_equal(got, want)
    assert got.sum() == mask.sum() and got[0] >= 2 and got[-1] >= 2
    hist = G.negative_histogram(tf.constant([[1e-5], [1e-5], [1e-3]]), tf.constant([0.0, 1.0, 0.0]))
    assert list(hist) == list(G.HIST_NAMES) and sum(float(c) for c in hist.values()) == 2.0
    with pytest.raises(ValueError, match="low < high"):
        G.log_histogram(tf.constant([1.0]), tf.constant([True]), low=1.0, high=0.5)


def test_logit_gradient_stats_masks_and_row_norms():
    g = np.array([0.1, -0.4, 0.3, -0.2, 5.0, 0.05], np.float32)
    y = np.array([0, 1, 0, 1, -1, 0], np.float32)  # -1 is padding: in neither class
    out = {k: float(v) for k, v in G.logit_gradient_stats(tf.constant(g), tf.constant(y)).items()}
    neg, pos = np.abs(g[y == 0]), np.abs(g[y == 1])
    for kind, vals in (("neg", neg), ("pos", pos)):
        assert out[f"grad_{kind}_mean"] == pytest.approx(vals.mean(), rel=1e-6)
        for q in (10, 50, 90):
            assert out[f"grad_{kind}_p{q}"] == pytest.approx(np.percentile(vals, q), rel=1e-6)
    assert tuple(out) == G.diagnostic_names()[:8]
    # A [batch, k] logit contributes each row's L2 norm, and each column on its own.
    g2 = np.array([[3.0, 4.0], [1.0, 0.0], [0.0, 2.0]], np.float32)
    out2 = G.logit_gradient_stats(tf.constant(g2), tf.constant([0.0, 0.0, 1.0]))
    assert tuple(out2) == G.diagnostic_names(logit_columns=2)[:24]
    assert float(out2["grad_neg_mean"]) == pytest.approx(3.0)
    assert float(out2["grad_pos_p50"]) == pytest.approx(2.0)
    assert float(out2["grad_neg_z0_mean"]) == pytest.approx(2.0) and float(out2["grad_neg_z1_p90"]) == pytest.approx(
        np.percentile([4.0, 0.0], 90))
    assert float(out2["grad_pos_z1_mean"]) == pytest.approx(2.0) and float(out2["grad_pos_z0_p10"]) == 0.0


def test_diagnostic_variables_of_dcn(tiny_dataset, tmp_path):
    batch = _batch(tiny_dataset)
    full = build_model(_cfg(tiny_dataset, tmp_path))
    full(batch[0], training=False)
    groups = full.diagnostic_variables()
    assert list(groups) == ["dnn0", "cross0", "cross1", "cross2"]
    assert groups["dnn0"][0] is full.dnn.dense_layers[0].kernel and groups["cross1"][0] is full.cross.cross_layers[1].w
    low = build_model(_cfg(tiny_dataset, tmp_path, "model.cross_low_rank=4", "model.num_cross_layers=2",
                           "model.dnn_hidden_units=[]"))
    low(batch[0], training=False)
    groups = low.diagnostic_variables()
    assert list(groups) == ["cross0", "cross1"] and [v.shape[1] for v in groups["cross0"]] == [4, 4]


# ------------------------------------------------------------------------------------------- train step


def _cfg(tiny_dataset, model_dir, *extra):
    return load_config(None, [f"data.dir={tiny_dataset}", f"train.model_dir={model_dir}",
                              "model.dnn_hidden_units=[16, 8]", "model.dropout=0.0", "data.batch_size=64",
                              "data.eval_batch_size=64", "train.log_every_seconds=0", "data.shuffle_buffer=0",
                              *extra])


def _batch(tiny_dataset, size=64):
    files = data_lib.split_files(tiny_dataset, "train")
    return next(iter(data_lib.make_dataset(files, CRITEO, size, training=False)))


class _Capture(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.batches = []

    def on_train_batch_end(self, batch, logs=None):
        self.batches.append({k: float(v) for k, v in (logs or {}).items()})


def _step(cfg, replicas, init, batch, diagnostics, csv_path=None):
    strategy = make_strategy(replicas)
    with strategy.scope():
        model = build_model(cfg)
        model(batch[0], training=False)
        model.set_weights(init)
        model.compile(optimizer=keras.optimizers.SGD(0.5), loss=losses.get("weighted_bce"))  # scale-sensitive
    capture = _Capture()
    callbacks = [capture] + ([GradientDiagnostics(csv_path)] if diagnostics else [])
    ds = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(batch))
    model.fit(ds, epochs=1, steps_per_epoch=1, verbose=0, callbacks=callbacks)
    return model, capture.batches[0]


def test_diagnostic_step_oracle_replicas_and_identical_update(tiny_dataset, tmp_path):
    cfg = _cfg(tiny_dataset, str(tmp_path), "model.embedding_l2=0.01")
    batch = _batch(tiny_dataset)
    features, y, w = batch
    base = build_model(cfg)
    base(features, training=False)
    init = base.get_weights()
    y, w = y.numpy().astype(np.float64), w.numpy().astype(np.float64)
    n = y.size
    assert 0 < y.sum() < n

    # Oracle: weighted BCE (KDD Eq. 15 / 10 / 11): dL/dz = p/N for a negative, -w(1-p)/N for a positive.
    p = base(features, training=True)["probability"].numpy().astype(np.float64)
    g = np.where(y > 0, w * (1.0 - p), p) / n
    with tf.GradientTape() as tape:
        out = base(features, training=True)
        loss = losses.get("weighted_bce")(batch[1], out, batch[2]) + tf.add_n(base.losses)
    groups = base.diagnostic_variables()
    flat = [v for vs in groups.values() for v in vs]
    grads = tape.gradient(loss, flat + base.trainable_variables)
    want = {"grad_neg_mean": g[y == 0].mean(), "grad_pos_mean": g[y == 1].mean()}
    for q in (10, 50, 90):
        want[f"grad_neg_p{q}"] = np.percentile(g[y == 0], q)
        want[f"grad_pos_p{q}"] = np.percentile(g[y == 1], q)
    for i, name in enumerate(groups):
        want[f"grad_norm_{name}"] = np.linalg.norm(grads[i].numpy())
    want["grad_norm_global"] = G.gradient_norm(grads[len(flat):]).numpy()
    edges = G.histogram_edges()  # Fig. 9: counts of the negatives' |dL/dz| per log-spaced bin
    counts = np.histogram(np.clip(g[y == 0], edges[0], np.nextafter(edges[-1], 0)), bins=edges)[0]
    want.update({name: float(c) for name, c in zip(G.HIST_NAMES, counts)})
    assert counts.sum() == (y == 0).sum() and np.count_nonzero(counts) >= 1

    one, logs1 = _step(cfg, 1, init, batch, True, str(tmp_path / "one.csv"))
    two, logs2 = _step(cfg, 2, init, batch, True, str(tmp_path / "two.csv"))
    plain, logs0 = _step(cfg, 1, init, batch, False)
    assert set(want) == {k for k in logs1 if k.startswith("grad_")} == {k for k in logs2 if k.startswith("grad_")}
    assert not any(k.startswith("grad_") for k in logs0)
    for k, v in want.items():
        assert logs1[k] == pytest.approx(v, rel=2e-4), k
        assert logs2[k] == pytest.approx(logs1[k], rel=1e-5), k  # global batch, all-reduced gradient
    assert logs1["loss"] == pytest.approx(logs0["loss"], rel=1e-6)
    moved = max(float(np.max(np.abs(a - b))) for a, b in zip(plain.get_weights(), init))
    assert moved > 1e-4
    for a, b, c in zip(plain.get_weights(), one.get_weights(), two.get_weights()):
        np.testing.assert_allclose(b, a, atol=1e-6)  # the diagnostic step applies the same update
        np.testing.assert_allclose(c, a, atol=1e-5)
    assert not one.gradient_diagnostics_enabled  # switched off at train end
    with open(tmp_path / "two.csv") as f:
        row = list(csv.DictReader(f))[0]
    assert float(row["grad_neg_p90"]) == pytest.approx(logs2["grad_neg_p90"], rel=1e-6)


def test_callback_csv_tensorboard_every_n_and_switch_off(tiny_dataset, tmp_path):
    cfg = _cfg(tiny_dataset, str(tmp_path))
    batch = _batch(tiny_dataset, 32)
    model = build_model(cfg)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=losses.get("weighted_bce"))
    ds = tf.data.Dataset.from_tensors(batch).repeat()
    model.fit(ds, epochs=1, steps_per_epoch=1, verbose=0)  # a train function traced without the diagnostics
    assert model.train_function is not None
    path, log_dir = str(tmp_path / "g" / "diag.csv"), str(tmp_path / "logs")
    model.fit(ds, epochs=2, steps_per_epoch=3, verbose=0,
              callbacks=[GradientDiagnostics(path, log_dir=log_dir, every_n_batches=2)])
    with open(path) as f:
        rows = list(csv.DictReader(f))
    # Global steps 2..7 (one step before); steps 3, 5, 7 are recorded: (step - 1) % 2 == 0.
    assert [(r["epoch"], r["batch"], r["step"]) for r in rows] == [("0", "1", "3"), ("1", "0", "5"), ("1", "2", "7")]
    assert list(rows[0])[3:] == list(G.diagnostic_names(["dnn0", "cross0", "cross1", "cross2"]))
    assert all(float(r["grad_neg_p10"]) <= float(r["grad_neg_p50"]) <= float(r["grad_neg_p90"]) for r in rows)
    events = glob.glob(os.path.join(log_dir, "gradients", "events.out.tfevents.*"))
    assert len(events) == 1
    steps = {}
    for event in tf.compat.v1.train.summary_iterator(events[0]):
        for value in event.summary.value:
            steps.setdefault(value.tag, []).append(event.step)
    assert steps["gradients/grad_neg_mean"] == [3, 5, 7] and "gradients/grad_norm_cross2" in steps
    assert not model.gradient_diagnostics_enabled
    history = model.fit(ds, epochs=1, steps_per_epoch=1, verbose=0)
    assert not any(k.startswith("grad_") for k in history.history)
    with pytest.raises(ValueError, match="every_n_batches"):
        GradientDiagnostics(path, every_n_batches=0)


def test_train_config_switch(tiny_dataset, tmp_path):
    with pytest.raises(ConfigError, match="train.gradient_diagnostics"):
        load_config(None, ["train.gradient_diagnostics=3"])
    assert load_config(None).train.gradient_diagnostics is False
    cfg = _cfg(tiny_dataset, str(tmp_path / "m"), "train.epochs=1", "train.steps_per_epoch=4",
               "train.gradient_diagnostics=true")
    result = train(cfg, printer=lambda _: None)
    with open(tmp_path / "m" / "gradient_diagnostics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert all(np.isfinite(float(r["grad_norm_global"])) and float(r["grad_norm_global"]) > 0 for r in rows)
    assert glob.glob(str(tmp_path / "m" / "logs" / "gradients" / "events.out.tfevents.*"))
    assert result.summary["replicas"] == 2 and not result.model.gradient_diagnostics_enabled


def test_diagnostic_step_on_a_bare_variable_and_loss_scale_refused():
    v = tf.Variable([1.0, -2.0, 0.5])
    labels = tf.constant([0.0, 1.0, 0.0])
    opt = keras.optimizers.SGD(0.1)
    with tf.GradientTape() as tape:
        logit = v * 2.0
        loss = tf.reduce_sum(tf.square(logit)) / 2.0  # dL/dz = z, dL/dv = 2 z
    out = G.diagnostic_step(opt, loss, tape, [v], logit, labels, {"v": v})
    assert float(out["grad_neg_mean"]) == pytest.approx(1.5) and float(out["grad_pos_p90"]) == pytest.approx(4.0)
    assert float(out["grad_norm_v"]) == pytest.approx(np.linalg.norm([4.0, -8.0, 2.0]), rel=1e-6)
    np.testing.assert_allclose(v.numpy(), [0.6, -1.2, 0.3], rtol=1e-6)  # the step was applied
    # A two-logit head ([batch, 2], JRC's (non-click, click)): row norms plus one series per column.
    w2 = tf.Variable([[1.0, 2.0], [0.5, -1.0], [2.0, 0.0]])
    with tf.GradientTape() as tape:
        logits = w2 * 1.0
        loss = tf.reduce_sum(tf.square(logits)) / 2.0  # dL/dz = z
    out = G.diagnostic_step(keras.optimizers.SGD(0.1), loss, tape, [w2], logits, labels)
    assert list(out) == list(G.diagnostic_names(logit_columns=2))
    assert float(out["grad_neg_mean"]) == pytest.approx((np.sqrt(5.0) + 2.0) / 2)
    assert float(out["grad_pos_z0_mean"]) == pytest.approx(0.5) and float(out["grad_neg_z1_p50"]) == 1.0
    lso = keras.mixed_precision.LossScaleOptimizer(keras.optimizers.SGD(0.1))
    with tf.GradientTape() as tape:
        logit = v * 2.0
        loss = tf.reduce_sum(logit)
    with pytest.raises(ValueError, match="LossScaleOptimizer"):
        G.diagnostic_step(lso, loss, tape, [v], logit, labels)
