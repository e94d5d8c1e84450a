"""weighted_bce (KDD 2024 Eq. 15): NumPy oracle, analytic gradient, edge cases, serialization, registry."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tfrec import losses
from tfrec.losses.pointwise import weighted_bce


def _oracle(y, z, w):
    y, z, w = (np.asarray(a, dtype=np.float64) for a in (y, z, w))
    valid = y >= 0
    y, z, w = y[valid], z[valid], w[valid]
    if y.size == 0:
        return 0.0
    sig = 1 / (1 + np.exp(-z))
    return float(-np.mean(w * y * np.log(sig) + (1 - y) * np.log(1 - sig)))


def _grad_oracle(y, z, w):
    y, z, w = (np.asarray(a, dtype=np.float64) for a in (y, z, w))
    valid = (y >= 0).astype(float)
    n = valid.sum()
    sig = 1 / (1 + np.exp(-z))
    yv = np.where(y >= 0, y, 0)
    return valid * (w * yv * (sig - 1) + (1 - yv) * sig) / max(n, 1)


@pytest.mark.parametrize("beta", [1.0, 0.5, 0.1])
def test_matches_numpy_oracle_and_divides_by_n(beta):
    rng = np.random.default_rng(0)
    y = (rng.random(64) < 0.3).astype(np.float32)
    z = rng.normal(size=64).astype(np.float32)
    w = np.where(y == 1, beta, 1.0).astype(np.float32)
    got = float(weighted_bce(tf.constant(y), tf.constant(z), tf.constant(w)))
    assert got == pytest.approx(_oracle(y, z, w), rel=1e-5)
    # Not normalised by the sum of weights (a common mistake): differs whenever beta < 1.
    if beta < 1:
        by_weight_sum = _oracle(y, z, w) * len(y) / w.sum()
        assert abs(got - by_weight_sum) > 1e-4


def test_negative_weights_are_not_used_and_beta_pos_argument():
    y = tf.constant([1.0, 0.0, 0.0])
    z = tf.constant([0.3, -0.2, 1.0])
    w = tf.constant([0.5, 7.0, 7.0])  # weights on negatives are ignored by Eq. 15
    assert float(weighted_bce(y, z, w)) == pytest.approx(_oracle([1, 0, 0], [0.3, -0.2, 1.0], [0.5, 1, 1]), rel=1e-6)
    assert float(weighted_bce(y, z, beta_pos=0.5)) == pytest.approx(float(weighted_bce(y, z, w)), rel=1e-6)


def test_analytic_gradient():
    rng = np.random.default_rng(1)
    y = np.r_[(rng.random(20) < 0.4).astype(np.float32), [-1.0, -1.0]]  # two padding entries
    z = tf.Variable(rng.normal(size=22).astype(np.float32))
    w = np.where(y == 1, 0.2, 1.0).astype(np.float32)
    with tf.GradientTape() as tape:
        loss = weighted_bce(tf.constant(y), z, tf.constant(w))
    g = tape.gradient(loss, z).numpy()
    np.testing.assert_allclose(g, _grad_oracle(y, z.numpy(), w), atol=1e-7)
    assert np.all(g[-2:] == 0.0)  # padding gets no gradient


def test_numeric_gradient():
    z0 = tf.constant([0.5, -1.5, 2.0, 0.1])
    y = tf.constant([1.0, 0.0, 1.0, 0.0])
    w = tf.constant([0.3, 1.0, 0.3, 1.0])
    theoretical, numerical = tf.test.compute_gradient(lambda z: weighted_bce(y, z, w), [z0])
    np.testing.assert_allclose(theoretical[0], numerical[0], atol=1e-3)


def test_edge_cases():
    z = tf.constant([0.2, -0.4])
    assert float(weighted_bce(tf.constant([0.0, 0.0]), z)) == pytest.approx(_oracle([0, 0], [0.2, -0.4], [1, 1]))
    assert float(weighted_bce(tf.constant([1.0, 1.0]), z, tf.constant([0.1, 0.1]))) == pytest.approx(
        _oracle([1, 1], [0.2, -0.4], [0.1, 0.1]), rel=1e-6)
    assert float(weighted_bce(tf.constant([1.0]), tf.constant([0.0]))) == pytest.approx(np.log(2), rel=1e-6)
    # All padding: 0, not NaN; and a zero gradient.
    zz = tf.Variable([1.0, 2.0])
    with tf.GradientTape() as tape:
        loss = weighted_bce(tf.constant([-1.0, -1.0]), zz)
    assert float(loss) == 0.0 and np.all(tape.gradient(loss, zz).numpy() == 0)
    # Huge logits: finite, and exact in the limits.
    huge = weighted_bce(tf.constant([1.0, 0.0, 1.0, 0.0]), tf.constant([1e4, -1e4, -1e4, 1e4]))
    assert np.isfinite(float(huge)) and float(huge) == pytest.approx(2e4 / 4)


def test_keras_loss_takes_dict_and_tensor_and_round_trips():
    loss = losses.get("weighted_bce", beta_pos=0.5)
    y = tf.constant([1.0, 0.0, 1.0])
    z = tf.constant([0.1, 0.2, -0.3])
    a = float(loss(y, z))
    b = float(loss(y, {"logit": z, "probability": tf.sigmoid(z)}))
    assert a == b == pytest.approx(_oracle([1, 0, 1], [0.1, 0.2, -0.3], [0.5, 1, 0.5]), rel=1e-6)
    clone = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(clone) is type(loss) and clone.get_config() == loss.get_config()
    assert float(clone(y, z)) == a
    # also works inside tf.function
    assert float(tf.function(lambda yy, zz: loss(yy, zz))(y, z)) == pytest.approx(a, rel=1e-6)


def test_registry_errors_name_the_problem():
    assert "weighted_bce" in losses.names()
    with pytest.raises(ValueError, match="unknown loss 'nope'"):
        losses.get("nope")
    with pytest.raises(ValueError, match="no argument 'alpha'"):
        losses.get("weighted_bce", alpha=0.5)
    with pytest.raises(ValueError, match="beta_pos"):
        losses.get("weighted_bce", beta_pos=1.5)
    with pytest.raises(ValueError, match="no 'logit'"):
        losses.get("weighted_bce")(tf.constant([1.0]), {"score": tf.constant([0.0])})
