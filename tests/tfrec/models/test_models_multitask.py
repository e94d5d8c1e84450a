"""Multi-task models (SharedBottom, MMoE, PLE, ESMM, SingleTask): outputs, gates, config, save/reload, fit
under 2 replicas, the ESMM product and gradient paths, and the masked CVR BCE against NumPy."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from sklearn.metrics import roc_auc_score

from tfrec.devices import make_strategy
from tfrec.layers import CGC, Experts, Gate
from tfrec.models import ESMM, MMoE, PLE, SharedBottom, SingleTask

DENSE = ["d0", "d1"]
CATEGORICAL = ["c0", "c1", "c2"]
VOCAB = {"c0": ["a", "b", "c"], "c1": ["x", "y"], "c2": ["p", "q", "r", "s"]}
TRANSFORM = {"kind": "log_minmax", "scale": {"d0": 3.0, "d1": 3.0}}
FEATS = dict(dense=DENSE, categorical=CATEGORICAL, vocabularies=VOCAB, transform=TRANSFORM, embedding_dim=4,
             embedding_l2=1e-5)
SMALL = dict(tower_units=[8])
ARCHS = {
    "shared_bottom": lambda **kw: SharedBottom(**FEATS, **SMALL, bottom_units=[8], **kw),
    "mmoe": lambda **kw: MMoE(**FEATS, **SMALL, num_experts=3, expert_units=[8], **kw),
    "ple": lambda **kw: PLE(**FEATS, **SMALL, num_levels=2, num_shared_experts=2, num_task_experts=1,
                            expert_units=[8], **kw),
    "esmm": lambda **kw: ESMM(**FEATS, **SMALL, **kw),
    "single_cvr": lambda **kw: SingleTask(**FEATS, **SMALL, task="cvr", **kw),
}


def _data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    x = {"d0": rng.normal(size=n).astype(np.float32) * 5, "d1": rng.normal(size=n).astype(np.float32)}
    x["d1"][0] = np.nan  # missing
    for c, vocab in VOCAB.items():
        x[c] = np.array([rng.choice(vocab + ["", "oov"]) for _ in range(n)])
    click = (rng.random(n) < 0.5).astype(np.float32)
    conv = click * (rng.random(n) < 0.5).astype(np.float32)
    click[:4], conv[:4] = [1, 1, 0, 1], [1, 0, 0, 1]  # at least one of each kind
    return {k: tf.constant(v) for k, v in x.items()}, np.stack([click, conv], axis=1)


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_outputs_gates_config(arch):
    model = ARCHS[arch]()
    x, _ = _data()
    out = model(x, training=False, return_gates=True)
    tasks = {"esmm": ["ctr", "cvr", "ctcvr"], "single_cvr": ["cvr"]}.get(arch, ["ctr", "cvr"])
    for t in tasks:
        assert out[t].shape == (32,) and out[f"{t}_logit"].shape == (32,)
        np.testing.assert_allclose(out[t].numpy(), tf.sigmoid(out[f"{t}_logit"]).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(out["probability"].numpy(), out[tasks[0]].numpy())
    np.testing.assert_array_equal(out["logit"].numpy(), out[f"{tasks[0]}_logit"].numpy())
    gates = {k: v for k, v in out.items() if k.startswith("gate_")}
    expected = {"mmoe": {"gate_ctr": 3, "gate_cvr": 3},
                "ple": {"gate_0_ctr": 3, "gate_0_cvr": 3, "gate_0_shared": 4, "gate_1_ctr": 3, "gate_1_cvr": 3}}
    assert {k: v.shape[1] for k, v in gates.items()} == expected.get(arch, {})
    for g in gates.values():
        np.testing.assert_allclose(tf.reduce_sum(g, axis=1).numpy(), 1.0, atol=1e-6)
        assert g.shape[0] == 32 and np.all(g.numpy() >= 0)
    assert not any(k.startswith("gate_") for k in model(x))
    clone = type(model).from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    for k, v in clone(x, return_gates=True).items():
        assert v.shape == out[k].shape


def test_layer_configs_round_trip():
    for layer in (Experts(2, [4]), Gate(3), CGC(2, 1, 2, [4], shared_gate=True)):
        clone = type(layer).from_config(layer.get_config())
        assert clone.get_config() == layer.get_config()
    outs, gates = CGC(2, 1, 2, [4], shared_gate=True)(tf.ones([5, 6]))
    assert [o.shape for o in outs] == [(5, 4)] * 3 and [g.shape[1] for g in gates] == [3, 3, 5]


def _bucket(p, num_thresholds=10000):
    """The number of ``keras.metrics.AUC`` thresholds below each probability (its ROC bucket)."""
    inner = [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]
    thresholds = np.array([-1e-7, *inner, 1.0 + 1e-7], np.float32)
    return np.searchsorted(thresholds, np.asarray(p, np.float32), side="left")


def _fit(arch, replicas, init, x, y, pwiser):
    strategy = make_strategy(replicas)
    with strategy.scope():
        model = ARCHS[arch](pwiser_tasks=pwiser, pwiser_pairing="global")
        model(x)
        model.set_weights(init)
        model.compile(optimizer=keras.optimizers.Adam(1e-2), run_eagerly=False)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)  # 2 global batches, split over the replicas
    return model, model.fit(ds, epochs=1, steps_per_epoch=2, verbose=0).history


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_fit_two_replicas_save_and_reload(arch, tmp_path):
    x, y = _data(64, seed=1)
    pwiser = ("cvr",) if arch == "single_cvr" else ("ctr",)
    base = ARCHS[arch](pwiser_tasks=pwiser, pwiser_pairing="global")
    base(x)
    init = base.get_weights()
    model, hist = _fit(arch, 2, init, x, y, pwiser)
    one, hist_one = _fit(arch, 1, init, x, y, pwiser)
    assert np.isfinite(hist["loss"][0]) and np.isfinite(hist[f"{pwiser[0]}_pwiser_loss"][0])
    comps = {"esmm": ["ctr_bce", "ctcvr_bce"], "single_cvr": ["cvr_bce"]}.get(arch, ["ctr_bce", "cvr_bce"])
    for c in comps:
        assert np.isfinite(hist[f"{c}_loss"][0])
    assert {k for k in hist if k.endswith("_bce_loss")} == {f"{c}_loss" for c in comps}  # ESMM: no cvr_bce
    # With PWiseR's global pairing, two replicas train exactly as one device on the same global batches:
    # weights, losses and metrics.
    trained_one = [v.numpy() for v in one.trainable_weights]
    assert max(float(np.abs(a - b.numpy()).max()) for a, b in zip(trained_one, base.trainable_weights)) > 1e-3
    for a, b in zip(trained_one, model.trainable_weights):
        np.testing.assert_allclose(b.numpy(), a, rtol=1e-4, atol=1e-5)
    assert set(hist) == set(hist_one)
    for k in hist:
        assert hist[k][0] == pytest.approx(hist_one[k][0], rel=1e-4, abs=1e-6), k
    # The per-task AUC metric is the AUC of the task's probability in the task's space (CVR: clicked rows), on
    # the metric's 10,000 thresholds (predictions between two thresholds tie).
    tasks = {"esmm": ["ctr", "cvr", "ctcvr"], "single_cvr": ["cvr"]}.get(arch, ["ctr", "cvr"])
    metrics = model.evaluate(tf.data.Dataset.from_tensor_slices((x, y)).batch(32), verbose=0, return_dict=True)
    out = model(x, training=False)
    click, conv = y[:, 0], y[:, 1]
    spaces = {"ctr": (click >= 0, click), "cvr": (click == 1, conv), "ctcvr": (click >= 0, click * conv)}
    for t in tasks:
        mask, labels = spaces[t]
        expected = roc_auc_score(labels[mask], _bucket(out[t].numpy()[mask]))
        assert metrics[f"{t}_auc"] == pytest.approx(expected, abs=1e-5), t
    before = model(x, training=False)
    path = str(tmp_path / f"{arch}.keras")
    model.save(path)
    reloaded = keras.models.load_model(path)
    after = reloaded(x, training=False)
    assert type(reloaded) is type(model) and reloaded.get_config() == model.get_config()
    for k in before:
        np.testing.assert_allclose(after[k].numpy(), before[k].numpy(), atol=1e-6)


def _product_logit_oracle(a, b):
    """``logit(sigma(a) sigma(b))`` in float64 with the documented cap ``log p <= -1e-30``."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    log_p = np.minimum(-np.logaddexp(0.0, -a) - np.logaddexp(0.0, -b), -1e-30)
    return log_p - np.log(-np.expm1(log_p))


def test_esmm_product_and_stable_logit():
    model = ARCHS["esmm"]()
    x, _ = _data()
    out = model(x)
    np.testing.assert_allclose(out["ctcvr"].numpy(), (out["ctr"] * out["cvr"]).numpy(), rtol=1e-6)
    np.testing.assert_allclose(tf.sigmoid(out["ctcvr_logit"]).numpy(), out["ctcvr"].numpy(), rtol=1e-4)
    np.testing.assert_allclose(out["ctcvr_logit"].numpy(),
                               _product_logit_oracle(out["ctr_logit"].numpy(), out["cvr_logit"].numpy()),
                               rtol=1e-5, atol=1e-5)
    from tfrec.models.multitask import product_logit

    a = tf.constant([-200.0, -30.0, 0.0, 30.0, 80.0])
    b = tf.constant([-200.0, 5.0, 0.0, 30.0, 90.0])
    z = product_logit(a, b).numpy()
    assert np.all(np.isfinite(z))
    np.testing.assert_allclose(z[2], np.log(0.25 / 0.75), rtol=1e-6)
    # Every input against float64: -400, -30.0067, log(1/3), 29.307 (p = 1 - 1.9e-13), and the cap at
    # p = 1 - 1e-30 (logit 69.08; uncapped it would be 80) for the last.
    expected = _product_logit_oracle(a.numpy(), b.numpy())
    np.testing.assert_allclose(z, expected, rtol=1e-5)
    np.testing.assert_allclose(expected, [-400.0, -30.006715348, np.log(1 / 3), 29.3068, 69.0776], rtol=1e-4)


def _tower_grads(model, x, y, names=None):
    cvr_vars = model.towers["cvr"].trainable_variables + model.heads["cvr"].trainable_variables
    with tf.GradientTape(persistent=True) as tape:
        out = model(x, training=True)
        loss, terms = model.task_loss_terms(tf.constant(y), out, None)
    grads = {k: tape.gradient(v, cvr_vars) for k, v in [("loss", loss), *terms.items()]}
    return grads, terms


def test_esmm_cvr_tower_learns_only_through_exposure_space_losses():
    model = ARCHS["esmm"]()
    x, y = _data()
    y[:, 0] = 0.0
    y[:, 1] = 0.0  # no click at all: a click-space CVR loss would be empty
    grads, terms = _tower_grads(model, x, y)
    assert set(terms) == {"ctr_bce", "ctcvr_bce"}  # no cvr_bce term
    assert all(g is None for g in grads["ctr_bce"])  # the CTR loss does not reach the CVR tower
    assert all(g is not None and np.any(g.numpy() != 0) for g in grads["ctcvr_bce"])
    for g_total, g_ctcvr in zip(grads["loss"], grads["ctcvr_bce"]):
        np.testing.assert_allclose(g_total.numpy(), g_ctcvr.numpy(), rtol=1e-6)
    # Whereas a click-space model gets no CVR gradient from a batch without clicks.
    mmoe = ARCHS["shared_bottom"]()
    grads, terms = _tower_grads(mmoe, x, y)
    assert float(terms["cvr_bce"]) == 0.0
    assert all(g is None or np.all(g.numpy() == 0) for g in grads["loss"])


def _np_bce(labels, logits):
    valid = labels >= 0
    y, z = labels[valid], logits[valid].astype(np.float64)
    return np.mean(y * np.log1p(np.exp(-z)) + (1 - y) * np.log1p(np.exp(z))) if valid.any() else 0.0


@pytest.mark.parametrize("arch", ["mmoe", "esmm"])
def test_loss_against_numpy(arch):
    model = ARCHS[arch](pwiser_tasks=("ctr",), pwiser_lambda=0.5)
    x, y = _data(8, seed=3)
    y[-1] = [-1.0, -1.0]  # padding
    out = model(x)
    loss, terms = model.task_loss_terms(tf.constant(y), out, None)
    click, conv = y[:, 0], y[:, 1]
    ctr = _np_bce(click, out["ctr_logit"].numpy())
    if arch == "esmm":
        second = _np_bce(np.where(click < 0, -1, click * conv), out["ctcvr_logit"].numpy())
        np.testing.assert_allclose(float(terms["ctcvr_bce"]), second, rtol=1e-5)
    else:
        second = _np_bce(np.where(click == 1, conv, -1.0), out["cvr_logit"].numpy())  # clicked samples only
        np.testing.assert_allclose(float(terms["cvr_bce"]), second, rtol=1e-5)
    np.testing.assert_allclose(float(terms["ctr_bce"]), ctr, rtol=1e-5)
    # PWiseR terms (probability space): conversions over click-only (m1) and no-click (m2), mean hinge.
    s = out["ctr"].numpy().astype(np.float64)
    valid = click >= 0
    c = s[valid & (conv == 1)]
    k = s[valid & (conv == 0) & (click == 1)]
    z = s[valid & (conv == 0) & (click == 0)]
    t1 = np.mean(np.maximum(0, 0.1 - (c[:, None] - k[None, :]))) if len(c) and len(k) else 0.0
    t2 = np.mean(np.maximum(0, 0.2 - (c[:, None] - z[None, :]))) if len(c) and len(z) else 0.0
    np.testing.assert_allclose(float(terms["ctr_pwiser"]), t1 + t2, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(float(loss), ctr + second + 0.5 * (t1 + t2), rtol=1e-5)


def test_pwiser_terms_come_from_the_registered_loss(monkeypatch):
    """The PWiseR terms of the multi-task models are the registered ``pwiser`` loss's ``pair_terms`` (no copy in
    the model): a class registered under that name is the one the model builds and calls, with the model's
    margins, space and pairing, and the terms equal the in-model computation they replace (``pwiser_terms`` on
    the labels with padding rows' click set to -1)."""
    from tfrec.losses import PWiseR, base, pairwise

    calls = []

    class Spy(PWiseR):
        def pair_terms(self, y_true, y_pred):
            calls.append((self.m1, self.m2, self.space, self.pairing))
            return super().pair_terms(y_true, y_pred)

    monkeypatch.setitem(base._REGISTRY, "pwiser", Spy)
    model = ARCHS["mmoe"](pwiser_tasks=("ctr", "cvr"), pwiser_m1=0.05, pwiser_m2=0.3, pwiser_space="logit",
                          pwiser_lambda=0.7)
    x, y = _data(16, seed=5)
    y[-1] = [-1.0, 0.0]  # padding (one negative label is enough)
    out = model(x)
    loss, terms = model.task_loss_terms(tf.constant(y), out, None)
    assert calls == [(0.05, 0.3, "logit", "replica")] * 2
    pad = (y[:, 0] < 0) | (y[:, 1] < 0)
    click = np.where(pad, -1.0, y[:, 0]).astype(np.float32)
    for t in ("ctr", "cvr"):
        t1, t2 = pairwise.pwiser_terms(click, y[:, 1], tf.reshape(out[f"{t}_logit"], [-1]), 0.05, 0.3, "logit")
        assert float(t1 + t2) > 0
        assert float(terms[f"{t}_pwiser"]) == float(t1 + t2)
    bce = sum(float(terms[f"{t}_bce"]) for t in ("ctr", "cvr"))
    np.testing.assert_allclose(float(loss), bce + 0.7 * (float(terms["ctr_pwiser"]) + float(terms["cvr_pwiser"])),
                               rtol=1e-6)
    # A registered class that scales its pair terms changes the model's loss: the model has no other source.
    monkeypatch.setitem(base._REGISTRY, "pwiser", type("Doubled", (PWiseR,), {
        "pair_terms": lambda self, y_true, y_pred: tuple(2.0 * v for v in PWiseR.pair_terms(self, y_true, y_pred))}))
    doubled = ARCHS["mmoe"](pwiser_tasks=("ctr",), pwiser_m1=0.05, pwiser_m2=0.3, pwiser_space="logit")
    doubled(x)
    doubled.set_weights(model.get_weights())
    _, terms2 = doubled.task_loss_terms(tf.constant(y), doubled(x), None)
    np.testing.assert_allclose(float(terms2["ctr_pwiser"]), 2.0 * float(terms["ctr_pwiser"]), rtol=1e-6)


def test_validation():
    with pytest.raises(ValueError, match="tasks"):
        SharedBottom(**FEATS, tasks=("ctr", "ltv"))
    with pytest.raises(ValueError, match="pwiser_tasks"):
        SharedBottom(**FEATS, pwiser_tasks=("ctcvr",))
    model = ESMM(**FEATS, pwiser_tasks=("ctcvr",))
    with pytest.raises(ValueError, match="loss=None"):
        model.compile(optimizer="adam", loss="binary_crossentropy")
