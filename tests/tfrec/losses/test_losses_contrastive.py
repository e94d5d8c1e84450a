"""Supervised contrastive loss (KDD 2024 Eq. 19) and Combined-Contrastive (Eq. 18).

NumPy float64 oracle written from Eq. 19 with explicit loops over anchors, analytic and numeric gradients, edge
cases, serialization and the registry.
"""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tfrec import losses
from tfrec.losses.contrastive import supervised_contrastive


def _sig(z):
    return 1 / (1 + np.exp(-z))


def _oracle(y, e, tau=0.4, normalize=True):
    """Eq. 19 literally: L = 1/N sum_i -1/|P(i)| sum_{p in P(i)} log(exp(s_ip) / sum_{a in A(i)} exp(s_ia))."""
    y = np.asarray(y, np.float64)
    e = np.asarray(e, np.float64)
    keep = y >= 0
    y, e = y[keep], e[keep]
    n = len(y)
    if n == 0:
        return 0.0
    if normalize:
        e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    total = 0.0
    for i in range(n):
        others = [a for a in range(n) if a != i]
        positives = [p for p in others if y[p] == y[i]]
        if not positives:
            continue  # contributes 0, still counts in N
        s = {a: e[i] @ e[a] / tau for a in others}
        shift = max(s.values())  # for the huge-norm cases; exact in exact arithmetic
        log_denom = shift + np.log(sum(np.exp(s[a] - shift) for a in others))
        total += -np.mean([s[p] - log_denom for p in positives])
    return total / n


def _grad_oracle(y, e, tau):
    """dL/dz = (G + G^T) z / tau with G_ij = [P(i) non-empty] (softmax_A(i)_j - [j in P(i)] / |P(i)|) / N
    (no normalisation; padding rows get 0)."""
    y = np.asarray(y, np.float64)
    e = np.asarray(e, np.float64)
    valid = y >= 0
    n = valid.sum()
    s = e @ e.T / tau
    G = np.zeros_like(s)
    for i in np.flatnonzero(valid):
        a_mask = valid.copy()
        a_mask[i] = False
        p_mask = a_mask & (y == y[i])
        if not p_mask.any():
            continue
        r = np.where(a_mask, np.exp(s[i] - s[i][a_mask].max()), 0)
        G[i] = (r / r.sum() - p_mask / p_mask.sum()) / n
    return (G + G.T) @ e / tau


def _batch(seed, n=24, d=6, pad=0, rate=0.3, scale=1.0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < rate).astype(np.float32)
    y[:2] = [1, 0]
    y[n - pad:] = -1.0
    e = (scale * rng.normal(size=(n, d))).astype(np.float32)
    return y, e


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("seed,tau,pad", [(0, 0.4, 0), (1, 0.1, 3), (2, 1.0, 5)])
def test_matches_numpy_oracle(seed, tau, pad, normalize):
    y, e = _batch(seed, pad=pad, scale=1.0 if normalize else 0.5)
    e[-1] = 1e3  # junk on a padding row (or a valid row when pad = 0): checked either way
    got = float(supervised_contrastive(tf.constant(y), tf.constant(e), tau, normalize))
    assert got == pytest.approx(_oracle(y, e, tau, normalize), rel=1e-4)


def test_padding_does_not_change_the_loss_and_gets_no_gradient():
    y, e = _batch(3, pad=0)
    ev = tf.Variable(np.concatenate([e, np.full((3, 6), 7.0, np.float32)]))
    with tf.GradientTape() as tape:
        loss = supervised_contrastive(tf.constant(np.r_[y, [-1, -1, -1]]), ev)
    assert float(loss) == pytest.approx(float(supervised_contrastive(tf.constant(y), tf.constant(e))), rel=1e-6)
    assert np.all(tape.gradient(loss, ev).numpy()[-3:] == 0)


def test_normalize_makes_it_scale_invariant_and_false_does_not():
    y, e = _batch(4)
    scales = np.random.default_rng(0).uniform(0.1, 10, size=(len(y), 1)).astype(np.float32)
    a = float(supervised_contrastive(tf.constant(y), tf.constant(e)))
    b = float(supervised_contrastive(tf.constant(y), tf.constant(e * scales)))
    assert a == pytest.approx(b, rel=1e-5)
    c = float(supervised_contrastive(tf.constant(y), tf.constant(e), normalize=False))
    d = float(supervised_contrastive(tf.constant(y), tf.constant(e * scales), normalize=False))
    assert abs(c - d) > 1e-3


def test_anchor_without_positives_contributes_zero_but_counts_in_n():
    y = np.array([1, 0, 0, 0], np.float32)  # the positive is alone in its class
    e = np.random.default_rng(1).normal(size=(4, 3)).astype(np.float32)
    got = float(supervised_contrastive(tf.constant(y), tf.constant(e), 0.5))
    expected = _oracle(y, e, 0.5)
    assert got == pytest.approx(expected, rel=1e-5)
    # i.e. the three negatives' terms (their denominators include the positive) divided by 4, not by 3.
    u = e.astype(np.float64) / np.linalg.norm(e.astype(np.float64), axis=1, keepdims=True)
    s = u @ u.T / 0.5
    terms = [np.mean([np.log(np.exp(s[i, np.arange(4) != i]).sum()) - s[i, p] for p in (1, 2, 3) if p != i])
             for i in (1, 2, 3)]
    assert got == pytest.approx(sum(terms) / 4, rel=1e-5)
    assert abs(got - sum(terms) / 3) > 1e-3


def test_analytic_gradient_without_normalisation():
    y, e = _batch(5, n=12, d=4, pad=2)
    ev = tf.Variable(e.astype(np.float64))
    with tf.GradientTape() as tape:
        loss = supervised_contrastive(tf.constant(y), ev, 0.4, normalize=False)
    np.testing.assert_allclose(tape.gradient(loss, ev).numpy(), _grad_oracle(y, e, 0.4), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("normalize", [True, False])
def test_numeric_gradient(normalize):
    y = tf.constant([1.0, 0.0, 1.0, 0.0, 0.0, -1.0], tf.float64)
    e0 = tf.constant(np.random.default_rng(6).normal(size=(6, 3)))
    theoretical, numerical = tf.test.compute_gradient(
        lambda e: supervised_contrastive(y, e, 0.4, normalize), [e0])
    np.testing.assert_allclose(theoretical[0], numerical[0], rtol=1e-5, atol=1e-6)


def _value_and_grad(y, e, **kw):
    ev = tf.Variable(e)
    with tf.GradientTape() as tape:
        loss = supervised_contrastive(tf.constant(y, ev.dtype), ev, **kw)
    return float(loss), tape.gradient(loss, ev).numpy()


@pytest.mark.parametrize("normalize", [True, False])
def test_edge_cases(normalize):
    e = np.random.default_rng(7).normal(size=(4, 3)).astype(np.float32)
    kw = {"normalize": normalize}
    # No positive / no negative: one class; every anchor's positives are all the others.
    for y in ([0.0] * 4, [1.0] * 4):
        v, g = _value_and_grad(y, e, **kw)
        assert v == pytest.approx(_oracle(y, e, 0.4, normalize), rel=1e-5) and np.all(np.isfinite(g))
    # One element, and two of different classes: no anchor has positives -> 0, zero gradient.
    for y, ee in (([1.0], e[:1]), ([1.0, 0.0], e[:2])):
        v, g = _value_and_grad(y, ee, **kw)
        assert v == 0.0 and np.all(g == 0)
    # All padding.
    v, g = _value_and_grad([-1.0] * 4, e, **kw)
    assert v == 0.0 and np.all(g == 0)
    # A zero embedding: finite, and the exact value and gradient. Normalised, it stays the zero vector
    # (l2_normalize divides by sqrt(max(|z|^2, 1e-12))), so its row's gradient is 1e6 times the gradient at the
    # normalised point, and the other rows get the normalisation's Jacobian (I - n n^T) / |z|.
    y = [1.0, 0.0, 1.0, 0.0]
    ez = np.vstack([np.zeros((1, 3), np.float32), e[1:]])
    v, g = _value_and_grad(y, ez, **kw)
    assert np.isfinite(v) and np.all(np.isfinite(g))
    assert v == pytest.approx(_oracle(y, ez, 0.4, normalize), rel=1e-5)
    z = ez.astype(np.float64)
    norms = np.sqrt(np.maximum((z ** 2).sum(axis=1, keepdims=True), 1e-12))
    n = z / norms if normalize else z
    upstream = _grad_oracle(y, n, 0.4)
    expected = (upstream - n * (n * upstream).sum(axis=1, keepdims=True)) / norms if normalize else upstream
    np.testing.assert_allclose(g, expected, rtol=1e-4, atol=1e-5 * max(1.0, np.abs(expected).max()))


def test_huge_norms_without_normalisation_are_finite():
    y, e = _batch(8, n=10, d=4)
    e = (e * 1e3).astype(np.float32)  # similarities ~ 1e6 / tau: exp would overflow without the shift
    v, g = _value_and_grad(y, e, normalize=False)
    assert np.isfinite(v) and np.all(np.isfinite(g))
    assert v == pytest.approx(_oracle(y, e, 0.4, False), rel=1e-4)
    v, g = _value_and_grad(y, e, normalize=True)  # and normalised: the same as unit-scale embeddings
    assert np.all(np.isfinite(g)) and v == pytest.approx(_oracle(y, e, 0.4, True), rel=1e-4)


def test_argument_errors():
    with pytest.raises(ValueError, match="temperature"):
        supervised_contrastive(tf.constant([1.0]), tf.constant([[1.0]]), temperature=0.0)
    with pytest.raises(ValueError, match=r"\[batch, d\]"):
        supervised_contrastive(tf.constant([1.0]), tf.constant([1.0]))


# ------------------------------------------------------------------------------------------ Keras classes


def _y_pred(seed=0, n=20):
    y, e = _batch(seed, n=n, pad=2)
    z = np.random.default_rng(seed).normal(size=n).astype(np.float32)
    w = np.where(y == 1, 0.5, 1.0).astype(np.float32)
    return y, z, w, e, {"logit": tf.constant(z), "probability": tf.sigmoid(z), "embedding": tf.constant(e)}


def _bce_oracle(y, z, w):
    keep = y >= 0
    y, z, w = (np.asarray(a, np.float64)[keep] for a in (y, z, w))
    return float(-np.mean(w * y * np.log(_sig(z)) + (1 - y) * np.log(1 - _sig(z))))


def test_supervised_contrastive_class():
    y, _, w, e, y_pred = _y_pred(1)
    loss = losses.get("supervised_contrastive", temperature=0.2)
    expected = _oracle(y, e, 0.2)
    assert float(loss(tf.constant(y), y_pred, tf.constant(w))) == pytest.approx(expected, rel=1e-5)
    assert float(loss(tf.constant(y), y_pred)) == pytest.approx(expected, rel=1e-5)  # unweighted
    with pytest.raises(ValueError, match="'embedding'"):
        loss(tf.constant(y), {"logit": y_pred["logit"]})
    with pytest.raises(ValueError, match="'embedding'"):
        loss(tf.constant(y), y_pred["logit"])


def test_combined_contrastive_terms_and_defaults():
    y, z, w, e, y_pred = _y_pred(2)
    loss = losses.get("combined_contrastive")
    assert (loss.alpha, loss.temperature, loss.normalize, loss.pairing) == (0.9, 0.4, True, "replica")
    assert loss.components == ("bce", "contrastive")
    total, terms = loss.compute_terms(tf.constant(y), y_pred, tf.constant(w))
    bce, contr = _bce_oracle(y, z, w), _oracle(y, e, 0.4)
    assert float(terms["bce"]) == pytest.approx(bce, rel=1e-5)
    assert float(terms["contrastive"]) == pytest.approx(contr, rel=1e-5)
    assert float(total) == pytest.approx(0.9 * bce + 0.1 * contr, rel=1e-5)
    assert float(loss(tf.constant(y), y_pred, tf.constant(w))) == pytest.approx(float(total), rel=1e-6)
    # Huge values: the value is the oracles' (BCE through log(1 + e^x) = logaddexp(0, x): 1 - sigma(80) rounds to
    # 0 even in float64; the normalised embeddings are those of e), gradients reach both the logit and the
    # embedding and stay finite.
    zv, ev = tf.Variable(np.full(len(y), 80.0, np.float32)), tf.Variable(e * 1e3)
    with tf.GradientTape() as tape:
        v = loss(tf.constant(y), {"logit": zv, "embedding": ev}, tf.constant(w))
    gz, ge = tape.gradient(v, [zv, ev])
    keep = y >= 0
    yk, wk = np.asarray(y, np.float64)[keep], np.asarray(w, np.float64)[keep]
    bce_huge = float(np.mean(wk * yk * np.logaddexp(0.0, -80.0) + (1 - yk) * np.logaddexp(0.0, 80.0)))
    assert float(v) == pytest.approx(0.9 * bce_huge + 0.1 * _oracle(y, e * 1e3, 0.4), rel=1e-5)
    assert np.all(np.isfinite(gz.numpy())) and np.all(np.isfinite(ge.numpy()))
    assert np.any(gz.numpy() != 0) and np.any(ge.numpy() != 0)


@pytest.mark.parametrize("name,cfg", [("supervised_contrastive", {"temperature": 0.3, "normalize": False}),
                                      ("combined_contrastive", {"alpha": 0.7, "pairing": "global"})])
def test_get_config_round_trip_and_tf_function(name, cfg):
    loss = losses.get(name, **cfg)
    config = loss.get_config()
    for k, v in cfg.items():
        assert config[k] == v
    clone = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(clone) is type(loss) and clone.get_config() == config
    assert losses.get(name, **{k: v for k, v in config.items() if k != "name"}).get_config() == config
    y, _, w, _, y_pred = _y_pred(3)
    eager = float(loss(tf.constant(y), y_pred, tf.constant(w)))
    assert float(clone(tf.constant(y), y_pred, tf.constant(w))) == eager
    graph = tf.function(lambda a, b, c: loss(a, b, c))(tf.constant(y), y_pred, tf.constant(w))
    assert float(graph) == pytest.approx(eager, rel=1e-6)


def test_class_argument_errors():
    for name in ("supervised_contrastive", "combined_contrastive"):
        assert name in losses.names()
        with pytest.raises(ValueError, match="temperature"):
            losses.get(name, temperature=-1.0)
        with pytest.raises(ValueError, match="pairing"):
            losses.get(name, pairing="batch")
        with pytest.raises(ValueError, match="normalize"):
            losses.get(name, normalize="yes")
    with pytest.raises(ValueError, match="alpha"):
        losses.get("combined_contrastive", alpha=-0.1)
    with pytest.raises(ValueError, match="no argument 'alpha'"):
        losses.get("supervised_contrastive", alpha=0.5)
