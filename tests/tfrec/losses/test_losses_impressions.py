"""The losses on a request's impressions (HCCP): the calibration BCE of Eq. 1 (``tfrec.losses.pointwise``) and the
ListNet of the Base+ListNet baseline (``tfrec.losses.consistency``). Float64 NumPy oracles, analytic gradients
against autodiff, the |U| normalisation, what is excluded, extreme logits, and the Three-Tower model using them."""

import numpy as np
import pytest
import tensorflow as tf

from tfrec.losses.consistency import list_net_impressions
from tfrec.losses.pointwise import impression_bce


def _random(B=5, L=7, seed=0, scale=2.0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(B, L)) * scale
    labels = (rng.random((B, L)) < 0.35).astype(np.float64)
    impressions = rng.random((B, L)) < 0.6
    impressions[0, :] = False  # a request with no impression still counts in |U|
    return labels, logits, impressions


def _bce_oracle(labels, logits, impressions):
    """Eq. 1 in float64: -1/|U| sum_u sum_{j in R^t_u} [l log sigma(z) + (1 - l) log(1 - sigma(z))]."""
    total = 0.0
    for b in range(logits.shape[0]):
        for j in range(logits.shape[1]):
            if impressions[b, j]:
                p = 1.0 / (1.0 + np.exp(-logits[b, j]))
                total -= labels[b, j] * np.log(p) + (1.0 - labels[b, j]) * np.log(1.0 - p)
    return total / logits.shape[0]


def _bce_grad_oracle(labels, logits, impressions):
    """dL/dz_j = (sigma(z_j) - l_j) / |U| on impressions, 0 elsewhere."""
    p = 1.0 / (1.0 + np.exp(-logits))
    return np.where(impressions, (p - labels) / logits.shape[0], 0.0)


def _listnet_oracle(labels, logits, impressions):
    """-1/|U| sum_u sum_{j in R^t_u} (l_j / sum l) log softmax_{R^t_u}(z)_j; a request without positives adds 0."""
    total = 0.0
    for b in range(logits.shape[0]):
        idx = np.flatnonzero(impressions[b])
        target = labels[b, idx]
        if target.sum() <= 0:
            continue
        z = logits[b, idx]
        log_p = z - (z.max() + np.log(np.exp(z - z.max()).sum()))
        total -= float(np.sum(target / target.sum() * log_p))
    return total / logits.shape[0]


def _listnet_grad_oracle(labels, logits, impressions):
    """dL/dz_j = (softmax_{R^t_u}(z)_j - l_j / sum l) / |U| on impressions of requests with positives."""
    g = np.zeros_like(logits)
    for b in range(logits.shape[0]):
        idx = np.flatnonzero(impressions[b])
        target = labels[b, idx]
        if target.sum() <= 0:
            continue
        z = logits[b, idx]
        soft = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        g[b, idx] = (soft - target / target.sum()) / logits.shape[0]
    return g


LOSSES = [(impression_bce, _bce_oracle, _bce_grad_oracle), (list_net_impressions, _listnet_oracle,
                                                            _listnet_grad_oracle)]
IDS = ["impression_bce", "list_net_impressions"]


@pytest.mark.parametrize("fn,oracle,_", LOSSES, ids=IDS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_float64_oracle(fn, oracle, _, seed):
    labels, logits, impressions = _random(seed=seed)
    expected = oracle(labels, logits, impressions)
    assert expected > 0
    got64 = float(fn(tf.constant(labels), tf.constant(logits), tf.constant(impressions)))
    assert got64 == pytest.approx(expected, rel=1e-12)
    got32 = float(fn(tf.constant(labels, tf.float32), tf.constant(logits, tf.float32), tf.constant(impressions)))
    assert got32 == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("fn,_,grad_oracle", LOSSES, ids=IDS)
@pytest.mark.parametrize("seed", [3, 4])
def test_gradient_matches_analytic_form(fn, _, grad_oracle, seed):
    labels, logits, impressions = _random(seed=seed)
    z = tf.Variable(logits)
    with tf.GradientTape() as tape:
        loss = fn(tf.constant(labels), z, tf.constant(impressions))
    grad = tape.gradient(loss, z).numpy()
    np.testing.assert_allclose(grad, grad_oracle(labels, logits, impressions), rtol=1e-10, atol=1e-14)
    # and against central finite differences of the float64 loss
    eps = 1e-6
    b, j = np.argwhere(impressions & (labels.sum(axis=1, keepdims=True) > 0))[0]
    up, down = logits.copy(), logits.copy()
    up[b, j] += eps
    down[b, j] -= eps
    numeric = (float(fn(tf.constant(labels), tf.constant(up), tf.constant(impressions)))
               - float(fn(tf.constant(labels), tf.constant(down), tf.constant(impressions)))) / (2 * eps)
    assert grad[b, j] == pytest.approx(numeric, rel=1e-6)


@pytest.mark.parametrize("fn", [impression_bce, list_net_impressions], ids=IDS)
def test_items_that_are_not_impressions_do_not_count(fn):
    labels, logits, impressions = _random(seed=5)
    base = float(fn(tf.constant(labels), tf.constant(logits), tf.constant(impressions)))
    rng = np.random.default_rng(9)
    other_logits = np.where(impressions, logits, rng.normal(size=logits.shape) * 50.0)
    other_labels = np.where(impressions, labels, 1.0 - labels)
    got = float(fn(tf.constant(other_labels), tf.constant(other_logits), tf.constant(impressions)))
    assert got == pytest.approx(base, rel=1e-12)


@pytest.mark.parametrize("fn", [impression_bce, list_net_impressions], ids=IDS)
def test_divides_by_all_requests_of_the_batch(fn):
    """|U| counts every row: appending requests without impressions scales the loss by B / (B + extra)."""
    labels, logits, impressions = _random(seed=6)
    base = float(fn(tf.constant(labels), tf.constant(logits), tf.constant(impressions)))
    pad = lambda a, v: np.concatenate([a, np.full((3, a.shape[1]), v, a.dtype)])  # noqa: E731
    got = float(fn(tf.constant(pad(labels, 1.0)), tf.constant(pad(logits, 4.0)), tf.constant(pad(impressions, False))))
    assert got == pytest.approx(base * 5 / 8, rel=1e-12)


@pytest.mark.parametrize("fn", [impression_bce, list_net_impressions], ids=IDS)
def test_empty_batch_and_batch_without_impressions_give_zero(fn):
    for shape in [(0, 4), (3, 4)]:
        out = fn(tf.ones(shape), tf.ones(shape), tf.zeros(shape, tf.bool))
        assert float(out) == 0.0


def test_list_net_ignores_a_request_without_positive():
    labels, logits, impressions = _random(seed=7)
    labels[1, :] = 0.0
    got = float(list_net_impressions(tf.constant(labels), tf.constant(logits), tf.constant(impressions)))
    assert got == pytest.approx(_listnet_oracle(labels, logits, impressions), rel=1e-12)
    changed = logits.copy()
    changed[1, :] += np.arange(logits.shape[1]) * 3.0
    assert float(list_net_impressions(tf.constant(labels), tf.constant(changed), tf.constant(impressions))) == (
        pytest.approx(got, rel=1e-12))


@pytest.mark.parametrize("fn", [impression_bce, list_net_impressions], ids=IDS)
def test_finite_for_extreme_logits(fn):
    labels, logits, impressions = _random(seed=8, scale=1e4)
    z = tf.Variable(logits.astype(np.float32))
    with tf.GradientTape() as tape:
        loss = fn(tf.constant(labels, tf.float32), z, tf.constant(impressions))
    assert np.isfinite(float(loss))
    assert np.all(np.isfinite(tape.gradient(loss, z).numpy()))
    if fn is impression_bce:
        assert float(loss) == pytest.approx(_bce_oracle_stable(labels, logits, impressions), rel=1e-5)


def _bce_oracle_stable(labels, logits, impressions):
    """Eq. 1 with log sigma(z) = -logaddexp(0, -z) (the plain oracle overflows at |z| = 1e4)."""
    per = labels * np.logaddexp(0.0, -logits) + (1.0 - labels) * np.logaddexp(0.0, logits)
    return float(np.sum(np.where(impressions, per, 0.0)) / logits.shape[0])


def test_the_three_tower_model_takes_its_terms_from_tfrec_losses():
    """The model module holds no copy: its calibration and ListNet terms are these functions."""
    from tfrec.models.preranking import model as three_tower

    assert three_tower.impression_bce is impression_bce
    assert three_tower.list_net_impressions is list_net_impressions
