"""focal (KDD 2024 Eq. 16) and normalized_focal (Focal', Eq. 17): NumPy oracles, analytic gradients, edge cases,
serialization, registry."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tfrec import losses
from tfrec.losses.classes.pointwise import Focal, NormalizedFocal
from tfrec.losses.pointwise import focal, normalized_focal, weighted_bce


def _parts(y, z, w):
    y, z, w = (np.asarray(a, dtype=np.float64) for a in (y, z, w))
    valid = y >= 0
    y, z, w = y[valid], z[valid], w[valid]
    log_p, log_1mp = -np.logaddexp(0.0, -z), -np.logaddexp(0.0, z)  # exact in float64 for |z| <= 80
    return y, w, np.exp(log_p), log_p, log_1mp, valid


def _oracle(y, z, w, gamma, normalized=False):
    y, w, p, log_p, log_1mp, _ = _parts(y, z, w)
    if y.size == 0:
        return 0.0
    neg_weight = p ** gamma
    if normalized:
        neg = y == 0
        neg_weight = neg_weight + 1.0 - (np.mean(p[neg] ** gamma) if neg.any() else 0.0)
    per = w * y * np.exp(log_1mp) ** gamma * log_p + (1 - y) * neg_weight * log_1mp
    return float(-np.mean(per))


def _grad_oracle(y, z, w, gamma, normalized=False):
    """Per-logit gradient, derived by hand (see the docstrings of focal and normalized_focal)."""
    y, w, p, log_p, log_1mp, valid = _parts(y, z, w)
    n = max(y.size, 1)
    g_pos = w * (gamma * p * (1 - p) ** gamma * log_p - (1 - p) ** (gamma + 1))
    if normalized:
        neg = y == 0
        m = np.mean(p[neg] ** gamma) if neg.any() else 0.0
        mean_log = np.mean(log_1mp[neg]) if neg.any() else 0.0
        g_neg = (p ** gamma + 1 - m) * p - gamma * p ** gamma * (1 - p) * (log_1mp - mean_log)
    else:
        g_neg = p ** (gamma + 1) - gamma * p ** gamma * (1 - p) * log_1mp
    out = np.zeros(valid.shape)
    out[valid] = np.where(y == 1, g_pos, g_neg) / n
    return out


def _batch(seed, n=48, beta=0.5, padding=3):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(np.float32)
    y[:2] = [1, 0]
    y[n - padding:] = -1.0
    z = (2.5 * rng.normal(size=n)).astype(np.float32)
    w = np.where(y == 1, beta, 1.0).astype(np.float32)
    return y, z, w


FNS = {"focal": (focal, False), "normalized_focal": (normalized_focal, True)}


@pytest.mark.parametrize("name", sorted(FNS))
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 5.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_numpy_oracle(name, gamma, seed):
    fn, normalized = FNS[name]
    y, z, w = _batch(seed, beta=[1.0, 0.2][seed])
    got = float(fn(tf.constant(y), tf.constant(z), tf.constant(w), gamma=gamma))
    assert got == pytest.approx(_oracle(y, z, w, gamma, normalized), rel=1e-5)
    if gamma == 0.0:  # both reduce to BCE with positive weights (Eq. 15)
        assert got == pytest.approx(float(weighted_bce(tf.constant(y), tf.constant(z), tf.constant(w))), rel=1e-6)


def test_focal_down_weights_easy_samples_and_normalisation_restores_negative_mass():
    y = np.array([0, 0, 0, 1], np.float32)
    z = np.array([-3.0, -2.0, 1.0, 0.5], np.float32)
    bce = float(weighted_bce(tf.constant(y), tf.constant(z)))
    assert float(focal(tf.constant(y), tf.constant(z), gamma=2.0)) < bce  # p^gamma < 1 shrinks every term
    # Focal' weights of the negatives are p^gamma + 1 - mean(p^gamma): their mean is exactly 1.
    p = 1 / (1 + np.exp(-z[:3].astype(np.float64)))
    weights = p ** 2 + 1 - np.mean(p ** 2)
    assert np.mean(weights) == pytest.approx(1.0)
    assert float(normalized_focal(tf.constant(y), tf.constant(z), gamma=2.0)) == pytest.approx(
        _oracle(y, z, np.ones(4), 2.0, normalized=True), rel=1e-6)


@pytest.mark.parametrize("name", sorted(FNS))
@pytest.mark.parametrize("gamma", [0.0, 2.0])
def test_analytic_gradient(name, gamma):
    fn, normalized = FNS[name]
    y, z0, w = _batch(4, beta=0.3)
    z = tf.Variable(z0)
    with tf.GradientTape() as tape:
        loss = fn(tf.constant(y), z, tf.constant(w), gamma=gamma)
    g = tape.gradient(loss, z).numpy()
    np.testing.assert_allclose(g, _grad_oracle(y, z0, w, gamma, normalized), rtol=2e-4, atol=1e-7)
    assert np.all(g[y < 0] == 0.0)  # padding gets no gradient
    if gamma == 0.0:  # Eq. 10 / Eq. 11 with positive weights: sigma(z)/N and -w (1 - sigma(z))/N
        n, sig = (y >= 0).sum(), 1 / (1 + np.exp(-z0.astype(np.float64)))
        np.testing.assert_allclose(g[y == 0], sig[y == 0] / n, rtol=1e-4)
        np.testing.assert_allclose(g[y == 1], -w[y == 1] * (1 - sig[y == 1]) / n, rtol=1e-4)


def test_normalized_focal_differentiates_through_the_batch_mean():
    # A negative's gradient depends on the other negatives through M (Eq. 17 taken literally).
    y = tf.constant([0.0, 0.0, 1.0])
    z = tf.Variable([0.5, -1.0, 0.2])
    with tf.GradientTape(persistent=True) as tape:
        loss = normalized_focal(y, z, gamma=2.0)
        grad = tape.gradient(loss, z)
    hessian_cross = tape.jacobian(grad, z).numpy()
    assert abs(hessian_cross[0, 1]) > 1e-4  # d/dz_1 of dL/dz_0 is not zero: coupled through M


@pytest.mark.parametrize("name", sorted(FNS))
def test_numeric_gradient(name):
    fn, _ = FNS[name]
    y = tf.constant([1.0, 0.0, 1.0, 0.0, 0.0, -1.0], tf.float64)
    w = tf.constant([0.3, 1.0, 0.3, 1.0, 1.0, 1.0], tf.float64)
    z0 = tf.constant([0.5, -1.5, 2.0, 0.1, 1.2, 0.7], tf.float64)
    theoretical, numerical = tf.test.compute_gradient(lambda z: fn(y, z, w, gamma=1.5), [z0])
    np.testing.assert_allclose(theoretical[0], numerical[0], atol=1e-6)


@pytest.mark.parametrize("name", sorted(FNS))
def test_edge_cases(name):
    fn, normalized = FNS[name]

    def run(y, z, w=None):
        zv = tf.Variable(np.asarray(z, np.float32))
        with tf.GradientTape() as tape:
            loss = fn(tf.constant(np.asarray(y, np.float32)), zv,
                      None if w is None else tf.constant(np.asarray(w, np.float32)), gamma=2.0)
        g = tape.gradient(loss, zv).numpy()
        assert np.isfinite(float(loss)) and np.all(np.isfinite(g))
        return float(loss), g

    ones = np.ones(3)
    for y in ([0, 0, 0], [1, 1, 1], [1, 0, -1]):  # no positives, no negatives, with padding
        z = [0.3, -1.0, 2.0]
        assert run(y, z)[0] == pytest.approx(_oracle(y, z, ones, 2.0, normalized), rel=1e-5)
    assert run([1.0], [0.0])[0] == pytest.approx(np.log(2) / 4, rel=1e-6)  # (1 - 0.5)^2 * log 2
    # One negative: Focal' gives it weight p^2 + 1 - p^2 = 1 (plain BCE); Focal gives it p^2.
    sig = 1 / (1 + np.exp(-0.3))
    assert run([0.0], [0.3])[0] == pytest.approx(np.log1p(np.exp(0.3)) * (1.0 if normalized else sig ** 2), rel=1e-5)
    # All padding: 0, not NaN, and a zero gradient.
    loss, g = run([-1, -1], [1.0, 2.0])
    assert loss == 0.0 and np.all(g == 0)
    # Logits of +-80: finite, equal to the float64 oracle (misclassified samples dominate: ~80 each).
    y, z = [1, 0, 1, 0], [80.0, -80.0, -80.0, 80.0]
    loss, g = run(y, z, [0.5, 1, 0.5, 1])
    assert loss == pytest.approx(_oracle(y, z, [0.5, 1, 0.5, 1], 2.0, normalized), rel=1e-5)
    assert loss > 10.0


def test_keras_losses_take_dict_and_tensor_round_trip_and_tf_function():
    y = tf.constant([1.0, 0.0, 1.0, 0.0])
    z = tf.constant([0.1, 0.2, -0.3, 1.1])
    w = tf.constant([0.5, 1.0, 0.5, 1.0])
    for cls, normalized in ((Focal, False), (NormalizedFocal, True)):
        loss = losses.get(cls.registered_name, gamma=1.5)
        assert type(loss) is cls
        a = float(loss(y, z, w))
        b = float(loss(y, {"logit": z, "probability": tf.sigmoid(z)}, w))
        assert a == b == pytest.approx(_oracle(y.numpy(), z.numpy(), w.numpy(), 1.5, normalized), rel=1e-6)
        clone = keras.losses.deserialize(keras.losses.serialize(loss))
        assert type(clone) is cls and clone.get_config() == loss.get_config()
        assert cls.from_config(loss.get_config()).get_config() == loss.get_config()
        assert float(clone(y, z, w)) == a
        assert float(tf.function(lambda yy, zz, ww: loss(yy, zz, ww))(y, z, w)) == pytest.approx(a, rel=1e-6)
    assert losses.get("normalized_focal", pairing="global").get_config()["pairing"] == "global"
    assert float(losses.get("normalized_focal", pairing="global")(y, z, w)) == pytest.approx(
        float(losses.get("normalized_focal")(y, z, w)))  # no strategy: the batch as given


def test_registry_and_argument_errors():
    assert {"focal", "normalized_focal"} <= set(losses.names())
    with pytest.raises(ValueError, match="no argument 'alpha'"):
        losses.get("focal", alpha=0.5)
    with pytest.raises(ValueError, match="no argument 'beta_pos'"):
        losses.get("normalized_focal", beta_pos=0.5)
    for name in ("focal", "normalized_focal"):
        with pytest.raises(ValueError, match="`gamma` must be >= 0"):
            losses.get(name, gamma=-1.0)
    with pytest.raises(ValueError, match="`gamma` must be >= 0"):
        focal(tf.constant([1.0]), tf.constant([0.0]), gamma=-0.5)
    with pytest.raises(ValueError, match="pairing"):
        losses.get("normalized_focal", pairing="batch")
