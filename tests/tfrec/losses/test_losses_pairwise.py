"""rank_net (KDD 2024 Eq. 9), combined_pair (Eq. 8) and pwiser (PWiseR, tfrec's reading): NumPy oracles,
the paper's analytic gradients (Eq. 10-12, Table 3), chunked == unchunked, edge cases, serialization, registry,
pairing under a 2-replica MirroredStrategy."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tfrec import losses
from tfrec.devices import make_strategy
from tfrec.losses.classes.pairwise import CombinedPair, PWiseR, RankNet
from tfrec.losses.pairwise import chunked_pair_sum, pwiser, pwiser_terms, rank_net, relu_pair_sum
from tfrec.losses.pointwise import weighted_bce

# ----------------------------------------------------------------------------------------------------- oracles


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, np.float64)))


def _rank_net_oracle(y, z):
    y, z = np.asarray(y, np.float64), np.asarray(z, np.float64)
    pos, neg = z[y == 1], z[y == 0]
    if pos.size * neg.size == 0:
        return 0.0
    return float(np.mean(np.logaddexp(0.0, neg[None, :] - pos[:, None])))  # -log sigma(z+ - z-)


def _rank_net_grad_oracle(y, z):
    """Eq. 12 with Eq. 9's 1/(N+ N-): sum_i sigma(z_j - z_i) on a negative, minus sum_j of it on a positive."""
    y, z = np.asarray(y, np.float64), np.asarray(z, np.float64)
    pos, neg = y == 1, y == 0
    g = np.zeros_like(z)
    if pos.any() and neg.any():
        s = _sigmoid(z[neg][None, :] - z[pos][:, None])
        g[neg] = s.sum(0) / s.size
        g[pos] = -s.sum(1) / s.size
    return g


def _bce_oracle(y, z, w):
    y, z, w = (np.asarray(a, np.float64) for a in (y, z, w))
    v = y >= 0
    if not v.any():
        return 0.0
    y, z, w = y[v], z[v], w[v]
    return float(np.mean(w * y * np.logaddexp(0.0, -z) + (1 - y) * np.logaddexp(0.0, z)))


def _pwiser_groups(click, conv):
    click, conv = np.asarray(click, np.float64), np.asarray(conv, np.float64)
    valid = (click >= 0) & (conv >= 0)
    c = valid & (conv == 1)
    return c, valid & (conv == 0) & (click == 1), valid & (conv == 0) & (click == 0)


def _pwiser_oracle(click, conv, z, m1, m2, space):
    z = np.asarray(z, np.float64)
    s = _sigmoid(z) if space == "probability" else z
    c, k, n = _pwiser_groups(click, conv)
    terms = []
    for group, m in ((k, m1), (n, m2)):
        if c.any() and group.any():
            terms.append(float(np.mean(np.maximum(0.0, m - (s[c][:, None] - s[group][None, :])))))
        else:
            terms.append(0.0)
    return tuple(terms)


def _pwiser_grad_oracle(click, conv, z, m1, m2, space):
    """d(term1 + term2)/dz: each active pair (hinge > 0) pushes s_i up and s_j down by 1/#pairs."""
    z = np.asarray(z, np.float64)
    s = _sigmoid(z) if space == "probability" else z
    c, k, n = _pwiser_groups(click, conv)
    g = np.zeros_like(z)
    for group, m in ((k, m1), (n, m2)):
        if c.any() and group.any():
            active = (m - (s[c][:, None] - s[group][None, :]) > 0) / (c.sum() * group.sum())
            g[c] -= active.sum(1)
            g[group] += active.sum(0)
    return g * (s * (1 - s) if space == "probability" else 1.0)


def _batch(seed, n=40, positive_rate=0.3, padding=3):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < positive_rate).astype(np.float32)
    y[:2] = [1, 0]
    y[n - padding:] = -1.0
    z = (2.0 * rng.normal(size=n)).astype(np.float32)
    w = np.where(y == 1, 0.4, 1.0).astype(np.float32)
    return y, z, w


def _funnel(seed, n=40, padding=3):
    rng = np.random.default_rng(seed)
    click = (rng.random(n) < 0.45).astype(np.float32)
    conv = click * (rng.random(n) < 0.4).astype(np.float32)
    click[:3], conv[:3] = [1, 1, 0], [1, 0, 0]
    click[n - padding:] = -1.0
    conv[n - padding:] = -1.0
    z = (1.5 * rng.normal(size=n)).astype(np.float32)
    w = np.where(click == 1, 0.5, 1.0).astype(np.float32)
    return click, conv, z, w


def _loss_and_grad(fn, z, dtype=tf.float32):
    zv = tf.Variable(np.asarray(z), dtype=dtype)
    with tf.GradientTape() as tape:
        loss = fn(zv)
    return loss.numpy(), tape.gradient(loss, zv).numpy()


# ----------------------------------------------------------------------------------------------------- RankNet


@pytest.mark.parametrize("chunk", [1, 5, 1 << 22])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rank_net_matches_numpy_oracle(seed, chunk):
    y, z, _ = _batch(seed, positive_rate=[0.3, 0.05, 0.8][seed])
    got = float(rank_net(tf.constant(y), tf.constant(z), max_pairs_per_chunk=chunk))
    assert got == pytest.approx(_rank_net_oracle(y, z), rel=1e-5)


@pytest.mark.parametrize("spread", [149.0, 151.0, 20.0])  # the outer-product form of sigma, and the fallback
@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
def test_rank_net_both_forms_of_sigma_match_the_oracle(spread, dtype):
    rng = np.random.default_rng(7)
    y = (rng.random(70) < 0.3).astype(np.float32)
    y[:2] = [1.0, 0.0]
    z = rng.uniform(-0.5, 0.5, size=70) * spread + 3.0
    z[0], z[1] = 3.0 + spread / 2, 3.0 - spread / 2  # a positive at the top, a negative at the bottom
    loss, grad = _loss_and_grad(lambda v: rank_net(tf.constant(y, dtype), v, max_pairs_per_chunk=64), z, dtype)
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    assert float(loss) == pytest.approx(_rank_net_oracle(y, z), rel=1e-5)
    np.testing.assert_allclose(grad, _rank_net_grad_oracle(y, z), rtol=1e-4, atol=1e-9)


def test_rank_net_gradient_is_eq_12():
    y, z, _ = _batch(3)
    loss, g = _loss_and_grad(lambda v: rank_net(tf.constant(y), v, max_pairs_per_chunk=7), z)
    np.testing.assert_allclose(g, _rank_net_grad_oracle(y, z), rtol=1e-5, atol=1e-9)
    assert np.all(g[y == 0] > 0) and np.all(g[y == 1] < 0) and np.all(g[y < 0] == 0)
    # The gradient sums to zero: RankNet only sees differences of logits.
    assert abs(g.sum()) < 1e-6


def test_bce_and_rank_net_gradients_agree_in_sign_table_3():
    y, z, _ = _batch(5, n=64, positive_rate=0.1)
    n = (y >= 0).sum()
    sig = _sigmoid(z)

    def grad(alpha):
        loss = CombinedPair(alpha=alpha, max_pairs_per_chunk=16)
        return _loss_and_grad(lambda v: loss(tf.constant(y), v), z)[1]

    bce, rank, half = grad(1.0), grad(0.0), grad(0.5)
    np.testing.assert_allclose(bce[y == 0], sig[y == 0] / n, rtol=1e-5)  # Eq. 10 (with 1/N)
    np.testing.assert_allclose(bce[y == 1], -(1 - sig[y == 1]) / n, rtol=1e-5)  # Eq. 11
    np.testing.assert_allclose(rank, _rank_net_grad_oracle(y, z), rtol=1e-5, atol=1e-9)  # Eq. 12
    valid = y >= 0
    assert np.all(np.sign(bce[valid]) == np.sign(rank[valid]))  # Table 3: same direction on every sample
    assert np.all(np.sign(bce[valid]) == np.where(y[valid] == 1, -1, 1))
    np.testing.assert_allclose(half, 0.5 * bce + 0.5 * rank, rtol=1e-5, atol=1e-9)  # Eq. 14
    assert np.all(bce[~valid] == 0) and np.all(rank[~valid] == 0) and np.all(half[~valid] == 0)


@pytest.mark.parametrize("dtype,rtol", [(tf.float64, 1e-12), (tf.float32, 2e-6)])
def test_chunked_equals_unchunked(dtype, rtol):
    y, z, _ = _batch(6, n=90)
    ref_loss, ref_grad = _loss_and_grad(lambda v: rank_net(tf.constant(y), v, max_pairs_per_chunk=1 << 30), z, dtype)
    for chunk in (1, 2, 3, 7, 64, 500):
        loss, grad = _loss_and_grad(lambda v: rank_net(tf.constant(y), v, max_pairs_per_chunk=chunk), z, dtype)
        np.testing.assert_allclose(loss, ref_loss, rtol=rtol)
        np.testing.assert_allclose(grad, ref_grad, rtol=rtol, atol=1e-15 if dtype == tf.float64 else 1e-9)
    # The same through tf.function (the graph while_loop).
    fn = tf.function(lambda yy, zz: rank_net(yy, zz, max_pairs_per_chunk=3))
    assert float(fn(tf.constant(y), tf.constant(z, dtype))) == pytest.approx(float(ref_loss), rel=1e-6)


def test_chunked_pair_sum_blocks_are_bounded_and_match_an_oracle():
    rng = np.random.default_rng(7)
    rows, cols = rng.normal(size=23), rng.normal(size=10)
    seen = []

    def hinge(d):
        seen.append(tuple(d.shape))
        t = d + 0.3
        return tf.nn.relu(t), tf.cast(t > 0, d.dtype)

    a, b = tf.Variable(rows), tf.Variable(cols)
    with tf.GradientTape() as tape:
        total = chunked_pair_sum(a, b, hinge, max_pairs_per_chunk=45)  # 4 rows (40 pairs) per block
    ga, gb = tape.gradient(total, [a, b])
    assert seen == [(4, 10)] * 5 + [(3, 10)]  # 6 blocks, none over 45 pairs; the whole 23 x 10 never built
    d = cols[None, :] - rows[:, None]
    assert float(total) == pytest.approx(np.maximum(0, d + 0.3).sum(), rel=1e-12)
    np.testing.assert_allclose(ga.numpy(), -(d + 0.3 > 0).sum(1))
    np.testing.assert_allclose(gb.numpy(), (d + 0.3 > 0).sum(0))
    seen.clear()
    chunked_pair_sum(tf.constant(rows), tf.constant(cols), hinge, max_pairs_per_chunk=3)
    assert seen == [(1, 10)] * 23  # fewer pairs than a row allows: one row per block
    with pytest.raises(ValueError, match="max_pairs_per_chunk"):
        chunked_pair_sum(a, b, hinge, max_pairs_per_chunk=0)


def test_relu_pair_sum_matches_all_pairs():
    rng = np.random.default_rng(9)
    rows = np.round(rng.normal(size=37), 1).astype(np.float32)  # rounding makes ties between rows and cols
    cols = np.round(rng.normal(size=53), 1).astype(np.float32)
    expected = np.maximum(0.0, cols[None, :].astype(np.float64) - rows[:, None]).sum()
    assert float(relu_pair_sum(tf.constant(rows), tf.constant(cols))) == pytest.approx(expected, rel=1e-9)
    assert float(relu_pair_sum(tf.constant(rows[:0]), tf.constant(cols))) == 0.0
    assert float(relu_pair_sum(tf.constant(rows), tf.constant(cols[:0]))) == 0.0
    big = tf.constant([-1e4, 3e4], tf.float32)
    assert float(relu_pair_sum(big, -big)) == pytest.approx(2e4, rel=1e-9)  # only 1e4 - (-1e4) is positive


def test_rank_net_edge_cases():
    def check(y, z, expected, chunk=4):
        loss, g = _loss_and_grad(lambda v: rank_net(tf.constant(np.asarray(y, np.float32)), v, chunk),
                                 np.asarray(z, np.float32))
        assert np.isfinite(loss) and np.all(np.isfinite(g))
        assert float(loss) == pytest.approx(expected, rel=1e-6, abs=1e-12)
        return g

    for y in ([0, 0, 0], [1, 1, 1], [1], [0], [-1, -1], [1, -1, -1]):  # no pair: 0 with zero gradient
        assert np.all(check(y, np.linspace(-1, 1, len(y)), 0.0) == 0)
    check([1, 0], [0.0, 0.0], np.log(2.0))
    # +-80: a correct pair costs ~exp(-160), a wrong one ~160 (softplus(160)); gradients stay finite.
    y, z = [1, 0, 1, 0], [80.0, -80.0, -80.0, 80.0]
    g = check(y, z, _rank_net_oracle(y, z))
    np.testing.assert_allclose(g, _rank_net_grad_oracle(y, z), atol=1e-7)
    fn = tf.function(lambda yy, zz: rank_net(yy, zz, 2))
    assert float(fn(tf.constant([-1.0, -1.0]), tf.constant([1.0, 2.0]))) == 0.0
    # Logits of +-1e4: exact in the limit (a wrong pair costs the logit gap).
    check([1, 0, 1, 0], [1e4, -1e4, -1e4, 1e4], (0 + 0 + 2e4 + 0) / 4 + np.log(2) / 2)
    # Every pair well ordered: a tiny loss, still accurate to float32 epsilon in absolute terms.
    y, z = [1, 1, 0, 0, 0], [9.0, 12.0, -9.0, -8.0, -10.0]
    loss, g = _loss_and_grad(lambda v: rank_net(tf.constant(np.asarray(y, np.float32)), v), np.asarray(z, np.float32))
    assert abs(float(loss) - _rank_net_oracle(y, z)) < 1e-7 and 0 < _rank_net_oracle(y, z) < 1e-6
    np.testing.assert_allclose(g, _rank_net_grad_oracle(y, z), rtol=1e-5)  # the gradient keeps full precision


@pytest.mark.parametrize("name", ["rank_net", "combined_pair", "pwiser"])
def test_numeric_gradient(name):
    z0 = tf.constant([0.5, -1.5, 2.0, 0.1, 1.2, -0.4, 0.9], tf.float64)
    y = tf.constant([1.0, 0.0, 1.0, 0.0, 0.0, 1.0, -1.0], tf.float64)
    w = tf.constant([0.3, 1.0, 0.3, 1.0, 1.0, 0.3, 1.0], tf.float64)
    if name == "rank_net":
        def f(z):
            return rank_net(y, z, max_pairs_per_chunk=3)
    elif name == "combined_pair":
        loss = CombinedPair(alpha=0.3, max_pairs_per_chunk=3)

        def f(z):
            return loss(y, z, w)
    else:  # logit space, margins chosen so that no pair sits on a hinge's kink
        loss = PWiseR(task="conversion", lam=0.7, m1=0.25, m2=1.0, space="logit", max_pairs_per_chunk=2)
        labels = tf.constant([[1, 1], [0, 0], [1, 0], [1, 0], [0, 0], [1, 1], [-1, -1]], tf.float64)

        def f(z):
            return loss(labels, z, w)
    theoretical, numerical = tf.test.compute_gradient(f, [z0])
    np.testing.assert_allclose(theoretical[0], numerical[0], atol=1e-6)


# ----------------------------------------------------------------------------------------------- Combined-Pair


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.5, 1.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_combined_pair_matches_oracle_and_reports_components(alpha, seed):
    y, z, w = _batch(seed + 10)
    loss = CombinedPair(alpha=alpha, max_pairs_per_chunk=9)
    total, terms = loss.compute_terms(tf.constant(y), tf.constant(z), tf.constant(w))
    bce, rank = _bce_oracle(y, z, w), _rank_net_oracle(y, z)
    assert float(terms["bce"]) == pytest.approx(bce, rel=1e-5)
    assert float(terms["rank_net"]) == pytest.approx(rank, rel=1e-5)
    assert float(total) == pytest.approx(alpha * bce + (1 - alpha) * rank, rel=1e-5)
    assert float(loss(tf.constant(y), tf.constant(z), tf.constant(w))) == pytest.approx(float(total), rel=1e-6)
    assert set(terms) == set(CombinedPair.components) == {"bce", "rank_net"}


def test_combined_pair_edge_cases():
    loss = CombinedPair(alpha=0.5)
    for y, z in (([0, 0], [0.3, -0.2]), ([1, 1], [0.3, -0.2]), ([1], [0.7]), ([-1, -1], [1.0, 2.0])):
        got, g = _loss_and_grad(lambda v: loss(tf.constant(np.asarray(y, np.float32)), v), np.asarray(z, np.float32))
        assert float(got) == pytest.approx(0.5 * _bce_oracle(y, z, np.ones(len(y))), rel=1e-6)  # no pair: RankNet 0
        assert np.all(np.isfinite(g))
    got, g = _loss_and_grad(lambda v: loss(tf.constant([1.0, 0.0, 1.0, 0.0]), v), np.array([80, -80, -80, 80.0]))
    assert np.isfinite(got) and np.all(np.isfinite(g))
    y, z = [1, 0, 1, 0], [80, -80, -80, 80]
    assert float(got) == pytest.approx(0.5 * _bce_oracle(y, z, np.ones(4)) + 0.5 * _rank_net_oracle(y, z), rel=1e-5)
    assert float(got) == pytest.approx(0.5 * 40 + 0.5 * (160 + 2 * np.log(2)) / 4, rel=1e-5)  # wrong ones cost 160


# ------------------------------------------------------------------------------------------------------ PWiseR


@pytest.mark.parametrize("space", ["probability", "logit"])
@pytest.mark.parametrize("seed", [0, 1])
def test_pwiser_terms_match_oracle(space, seed):
    click, conv, z, _ = _funnel(seed)
    t1, t2 = pwiser_terms(tf.constant(click), tf.constant(conv), tf.constant(z), m1=0.1, m2=0.2, space=space,
                          max_pairs_per_chunk=5)
    e1, e2 = _pwiser_oracle(click, conv, z, 0.1, 0.2, space)
    assert e1 > 0 and e2 > 0
    assert float(t1) == pytest.approx(e1, rel=1e-5) and float(t2) == pytest.approx(e2, rel=1e-5)
    assert float(pwiser(tf.constant(click), tf.constant(conv), tf.constant(z), 0.1, 0.2, space)) == pytest.approx(
        e1 + e2, rel=1e-5)


@pytest.mark.parametrize("task", ["click", "conversion"])
def test_pwiser_loss_is_bce_plus_lambda_terms(task):
    click, conv, z, w = _funnel(4)
    loss = PWiseR(task=task, lam=0.7, m1=0.15, m2=0.3)
    labels = np.stack([click, conv], axis=1)
    total, terms = loss.compute_terms(tf.constant(labels), {"logit": tf.constant(z)}, tf.constant(w))
    bce = _bce_oracle(click if task == "click" else conv, z, w)
    e1, e2 = _pwiser_oracle(click, conv, z, 0.15, 0.3, "probability")
    assert float(terms["bce"]) == pytest.approx(bce, rel=1e-5)
    assert float(terms["pwiser_click_only"]) == pytest.approx(e1, rel=1e-5)
    assert float(terms["pwiser_no_click"]) == pytest.approx(e2, rel=1e-5)
    assert float(total) == pytest.approx(bce + 0.7 * (e1 + e2), rel=1e-5)
    assert set(terms) == set(PWiseR.components)


@pytest.mark.parametrize("space", ["probability", "logit"])
def test_pwiser_gradient(space):
    click, conv, z, _ = _funnel(8)
    _, g = _loss_and_grad(lambda v: pwiser(tf.constant(click), tf.constant(conv), v, 0.1, 0.2, space, 3), z,
                          tf.float64)
    np.testing.assert_allclose(g, _pwiser_grad_oracle(click, conv, z, 0.1, 0.2, space), rtol=1e-9, atol=1e-12)
    c, _, _ = _pwiser_groups(click, conv)
    assert np.all(g[c] <= 0) and np.all(g[~c] >= 0)  # conversions pushed up, the others down
    assert np.all(g[click < 0] == 0)


def test_pwiser_edge_cases():
    z = np.array([0.2, -0.1, 0.4, 1.0], np.float32)

    def terms(click, conv, zz=z):
        zv = tf.Variable(zz)
        with tf.GradientTape() as tape:
            t1, t2 = pwiser_terms(tf.constant(click, tf.float32), tf.constant(conv, tf.float32), zv)
            total = t1 + t2
        g = tape.gradient(total, zv).numpy()
        assert np.all(np.isfinite(g)) and np.isfinite(float(total))
        return float(t1), float(t2), g

    t1, t2, g = terms([1, 1, 0, 0], [0, 0, 0, 0])  # no conversion: no pair at all
    assert t1 == t2 == 0.0 and np.all(g == 0)
    t1, t2, _ = terms([1, 0, 0, 0], [1, 0, 0, 0])  # no click-only sample
    assert t1 == 0.0 and t2 == pytest.approx(_pwiser_oracle([1, 0, 0, 0], [1, 0, 0, 0], z, 0.1, 0.2, "probability")[1])
    t1, t2, _ = terms([1, 1, 1, 1], [1, 0, 0, 1])  # no no-click sample
    assert t2 == 0.0 and t1 > 0
    t1, t2, g = terms([-1, -1, -1, -1], [-1, -1, -1, -1])  # all padding
    assert t1 == t2 == 0.0 and np.all(g == 0)
    t1, t2, g = terms([1, 1, 0, 0], [1, 0, 0, 0], np.array([-80, 80, 80, -80], np.float32))  # huge logits
    # probabilities 0, 1, 1, 0: term1 = 0.1 - (0 - 1); term2 = mean(0.2 - (0 - 1), 0.2 - (0 - 0))
    assert t1 == pytest.approx(1.1, rel=1e-6) and t2 == pytest.approx(0.7, rel=1e-6)
    loss = PWiseR(task="click")
    one = float(loss(tf.constant([[1.0, 1.0]]), tf.constant([0.3])))  # one element: BCE only
    assert one == pytest.approx(np.log1p(np.exp(-0.3)), rel=1e-6)
    assert float(loss(tf.constant([[-1.0, -1.0], [-1.0, -1.0]]), tf.constant([0.3, 0.1]))) == 0.0


# --------------------------------------------------------------------------------------- classes and registry


def test_keras_classes_round_trip_take_dicts_and_run_in_tf_function():
    y, z, w = _batch(12)
    click, conv, zf, wf = _funnel(12)
    cases = [(losses.get("rank_net", max_pairs_per_chunk=64), y, z, w),
             (losses.get("combined_pair", alpha=0.3, pairing="global"), y, z, w),
             (losses.get("pwiser", task="conversion", lam=0.5, m1=0.05, m2=0.3, space="logit"),
              np.stack([click, conv], 1), zf, wf)]
    for loss, labels, logits, weights in cases:
        a = float(loss(tf.constant(labels), tf.constant(logits), tf.constant(weights)))
        b = float(loss(tf.constant(labels), {"logit": tf.constant(logits)}, tf.constant(weights)))
        assert a == b
        clone = keras.losses.deserialize(keras.losses.serialize(loss))
        assert type(clone) is type(loss) and clone.get_config() == loss.get_config()
        assert type(loss).from_config(loss.get_config()).get_config() == loss.get_config()
        assert float(clone(tf.constant(labels), tf.constant(logits), tf.constant(weights))) == a
        fn = tf.function(lambda yy, zz, ww, loss=loss: loss(yy, zz, ww))
        assert float(fn(tf.constant(labels), tf.constant(logits), tf.constant(weights))) == pytest.approx(a, rel=1e-6)
    assert type(cases[0][0]) is RankNet and cases[1][0].get_config()["pairing"] == "global"
    assert float(cases[0][0](tf.constant(y), tf.constant(z))) == pytest.approx(_rank_net_oracle(y, z), rel=1e-5)
    assert cases[2][0].get_config() == {"name": "pwiser", "pairing": "replica", "max_pairs_per_chunk": 1 << 22,
                                        "task": "conversion", "lam": 0.5, "m1": 0.05, "m2": 0.3, "space": "logit"}
    assert CombinedPair().alpha == 0.5 and PWiseR().lam == 0.1 and (PWiseR().m1, PWiseR().m2) == (0.1, 0.2)


def test_registry_and_argument_errors():
    assert {"rank_net", "combined_pair", "pwiser"} <= set(losses.names())
    with pytest.raises(ValueError, match="no argument 'alpha'"):
        losses.get("rank_net", alpha=0.5)
    with pytest.raises(ValueError, match="no argument 'gamma'"):
        losses.get("combined_pair", gamma=2.0)
    bad = [("combined_pair", {"alpha": 1.5}, "`alpha` must be in \\[0, 1\\]"),
           ("combined_pair", {"alpha": -0.1}, "`alpha`"),
           ("rank_net", {"pairing": "batch"}, "`pairing` must be one of"),
           ("rank_net", {"max_pairs_per_chunk": 0}, "`max_pairs_per_chunk` must be a positive integer"),
           ("rank_net", {"max_pairs_per_chunk": 2.5}, "`max_pairs_per_chunk`"),
           ("pwiser", {"task": "purchase"}, "`task` must be 'click' or 'conversion'"),
           ("pwiser", {"lam": -1.0}, "`lam` must be >= 0"),
           ("pwiser", {"m1": -0.1}, "`m1` must be >= 0"),
           ("pwiser", {"m2": -0.1}, "`m2` must be >= 0"),
           ("pwiser", {"space": "rank"}, "`space` must be one of")]
    for name, cfg, message in bad:
        with pytest.raises(ValueError, match=message):
            losses.get(name, **cfg)
    with pytest.raises(ValueError, match=r"\[batch, 2\]"):
        losses.get("pwiser")(tf.constant([1.0, 0.0]), tf.constant([0.1, 0.2]))


@pytest.mark.parametrize("name", ["rank_net", "combined_pair", "pwiser"])
def test_pairing_under_two_replicas(name):
    # "global": every replica computes the loss of the whole batch; "replica": the loss of its own half.
    if name == "pwiser":
        click, conv, z, w = _funnel(13, n=16, padding=0)
        labels = np.stack([click, conv], 1)
    else:
        labels, z, w = _batch(13, n=16, padding=0)
        labels[8] = 1.0  # both halves hold both classes
    strategy = make_strategy(2)
    data = tf.data.Dataset.from_tensors((tf.constant(labels), tf.constant(z), tf.constant(w)))
    batch = next(iter(strategy.experimental_distribute_dataset(data)))
    results, grads = {}, {}
    for pairing in ("global", "replica"):
        loss = losses.get(name, pairing=pairing)

        def step(yy, zz, ww, loss=loss):
            with tf.GradientTape() as tape:
                tape.watch(zz)
                value = loss(yy, zz, ww)
            return value, tape.gradient(value, zz)

        @tf.function
        def run(b):
            return strategy.run(step, args=b)

        values, g = run(batch)
        results[pairing] = [float(t) for t in strategy.experimental_local_results(values)]
        grads[pairing] = np.concatenate([t.numpy() for t in strategy.experimental_local_results(g)])
    whole, whole_grad = _loss_and_grad(lambda v: losses.get(name)(tf.constant(labels), v, tf.constant(w)), z)
    # The all_gather's gradient sums the replicas' incoming gradients: each row gets R * dL_global/dz.
    np.testing.assert_allclose(grads["global"], 2 * whole_grad, rtol=1e-5, atol=1e-8)
    halves = [float(losses.get(name)(tf.constant(labels[s]), tf.constant(z[s]), tf.constant(w[s])))
              for s in (slice(0, 8), slice(8, 16))]
    np.testing.assert_allclose(results["global"], [whole, whole], rtol=1e-6)
    np.testing.assert_allclose(results["replica"], halves, rtol=1e-6)
    assert abs(halves[0] - whole) > 1e-4
