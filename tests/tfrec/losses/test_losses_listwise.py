"""List-wise losses: ListNet (KDD 2024 Eq. 3), Combined-List, ListCE (Eq. 5), RCR, JRC (Eq. 6-7).

NumPy float64 oracles written from the formulas (explicit loops, no log-sum-exp), analytic gradients, numeric
gradients, edge cases, serialization and the registry.
"""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tfrec import losses
from tfrec.losses.listwise import jrc, jrc_terms, list_ce, list_net, masked_logsumexp


def _sig(z):
    return 1 / (1 + np.exp(-z))


def _valid(y, z, w):
    y = np.asarray(y, np.float64)
    z = np.asarray(z, np.float64)
    w = np.ones(len(y)) if w is None else np.asarray(w, np.float64)
    keep = y >= 0
    y, z, w = y[keep], z[keep], w[keep]
    return y, z, np.where(y == 1, w, 1.0)  # weights of negatives are not used


def _list_oracle(y, z, w, score):
    """-sum_{i in P} w_i log(score(z_i) / sum_k w_k score(z_k)) / sum_{i in P} w_i; 0 without positives."""
    y, z, w = _valid(y, z, w)
    if not np.any(y == 1):
        return 0.0
    denom = np.sum(w * score(z))
    total = 0.0
    for i in range(len(y)):
        if y[i] == 1:
            total += w[i] * -np.log(score(z[i]) / denom)
    return total / np.sum(w[y == 1])


def _list_net_oracle(y, z, w=None):
    return _list_oracle(y, z, w, np.exp)


def _list_ce_oracle(y, z, w=None):
    return _list_oracle(y, z, w, _sig)


def _bce_oracle(y, z, w=None):
    y, z, w = _valid(y, z, w)
    if y.size == 0:
        return 0.0
    return float(-np.mean(w * y * np.log(_sig(z)) + (1 - y) * np.log(1 - _sig(z))))


def _jrc_oracle(y, zz, w=None):
    y = np.asarray(y, np.float64)
    zz = np.asarray(zz, np.float64)
    keep = y >= 0
    y, zz = y[keep], zz[keep]
    w = np.ones(len(y)) if w is None else np.asarray(w, np.float64)[keep]
    w = np.where(y == 1, w, 1.0)
    n = len(y)
    if n == 0:
        return 0.0, 0.0
    clf = rank = 0.0
    for i in range(n):
        c = int(y[i])
        clf += w[i] * -np.log(np.exp(zz[i, c]) / (np.exp(zz[i, 0]) + np.exp(zz[i, 1])))
        rank += w[i] * -np.log(np.exp(zz[i, c]) / sum(w[k] * np.exp(zz[k, c]) for k in range(n)))
    return clf / n, rank / n


def _list_grad_oracle(y, z, w, kind):
    """Analytic gradient on the full (padded) batch: ListNet q_k - a_k, ListCE (1 - sigma(z_k)) (q_k - a_k)."""
    y, z = np.asarray(y, np.float64), np.asarray(z, np.float64)
    w = np.ones(len(y)) if w is None else np.asarray(w, np.float64)
    valid = y >= 0
    w = np.where(y == 1, w, 1.0)
    s = np.exp(z) if kind == "net" else _sig(z)
    q = np.where(valid, w * s, 0) / np.sum(np.where(valid, w * s, 0))
    a = np.where(valid & (y == 1), w, 0.0)
    a = a / a.sum()
    g = q - a
    return np.where(valid, g if kind == "net" else (1 - _sig(z)) * g, 0.0)


def _batch(seed, n=40, beta=0.5, pad=0, rate=0.3, scale=2.0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < rate).astype(np.float32)
    y[:2] = [1, 0]
    y[n - pad:] = -1.0
    z = (scale * rng.normal(size=n)).astype(np.float32)
    w = np.where(y == 1, beta, 1.0).astype(np.float32)
    w[n - pad:] = 3.0  # junk weight on padding: must not matter
    return y, z, w


FUNCS = {"list_net": (list_net, _list_net_oracle), "list_ce": (list_ce, _list_ce_oracle)}


# ------------------------------------------------------------------------------------------------- oracles


@pytest.mark.parametrize("name", sorted(FUNCS))
@pytest.mark.parametrize("seed,beta,pad", [(0, 1.0, 0), (1, 0.5, 3), (2, 0.1, 5), (3, 0.3, 0)])
def test_list_losses_match_numpy_oracle(name, seed, beta, pad):
    fn, oracle = FUNCS[name]
    y, z, w = _batch(seed, beta=beta, pad=pad)
    got = float(fn(tf.constant(y), tf.constant(z), tf.constant(w)))
    assert got == pytest.approx(oracle(y, z, w), rel=1e-5, abs=1e-6)
    got_plain = float(fn(tf.constant(y), tf.constant(z)))
    assert got_plain == pytest.approx(oracle(y, z, None), rel=1e-5, abs=1e-6)
    if beta < 1:  # the weights change the loss (denominator and average)
        assert abs(got - got_plain) > 1e-4


def test_list_net_unweighted_is_eq_3_literally():
    y = np.array([1, 0, 1, 0, 0], np.float64)
    z = np.array([0.5, -0.3, 1.2, 0.0, 2.0])
    eq3 = -np.mean([np.log(np.exp(z[i]) / np.exp(z).sum()) for i in (0, 2)])
    assert float(list_net(tf.constant(y), tf.constant(z))) == pytest.approx(eq3, rel=1e-12)
    eq5 = -np.mean([np.log(_sig(z[i]) / _sig(z).sum()) for i in (0, 2)])
    assert float(list_ce(tf.constant(y), tf.constant(z))) == pytest.approx(eq5, rel=1e-12)


def test_weights_on_negatives_are_ignored_and_equal_positive_weights_enter_denominator_only():
    y = tf.constant([1.0, 0.0, 1.0, 0.0])
    z = tf.constant([0.3, -0.2, 1.0, 0.4])
    a = float(list_net(y, z, tf.constant([0.5, 9.0, 0.5, 9.0])))
    b = float(list_net(y, z, tf.constant([0.5, 1.0, 0.5, 1.0])))
    assert a == pytest.approx(b, rel=1e-6)
    # Equal positive weights: the outer average is 1/N+; the weight only scales the positives in the denominator.
    zz = z.numpy().astype(np.float64)
    denom = 0.5 * np.exp(zz[0]) + np.exp(zz[1]) + 0.5 * np.exp(zz[2]) + np.exp(zz[3])
    assert a == pytest.approx(-0.5 * (zz[0] + zz[2] - 2 * np.log(denom)), rel=1e-6)


def test_unequal_positive_weights_give_a_weighted_mean():
    y, z, w = [1, 1, 0], [0.2, -0.4, 0.1], [0.2, 0.6, 1.0]
    denom = 0.2 * np.exp(0.2) + 0.6 * np.exp(-0.4) + np.exp(0.1)
    expected = (0.2 * (np.log(denom) - 0.2) + 0.6 * (np.log(denom) + 0.4)) / 0.8
    got = float(list_net(tf.constant(y, tf.float64), tf.constant(z, tf.float64), tf.constant(w, tf.float64)))
    assert got == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("seed,beta,pad", [(0, 1.0, 0), (4, 0.2, 4), (5, 0.5, 0)])
def test_jrc_matches_numpy_oracle(seed, beta, pad):
    y, _, w = _batch(seed, beta=beta, pad=pad)
    zz = np.random.default_rng(seed + 10).normal(size=(len(y), 2)).astype(np.float32) * 2
    clf, rank = jrc_terms(tf.constant(y), tf.constant(zz), tf.constant(w))
    o_clf, o_rank = _jrc_oracle(y, zz, w)
    assert float(clf) == pytest.approx(o_clf, rel=1e-5)
    assert float(rank) == pytest.approx(o_rank, rel=1e-5)
    for alpha in (0.0, 0.3, 1.0):
        got = float(jrc(tf.constant(y), tf.constant(zz), tf.constant(w), alpha=alpha))
        assert got == pytest.approx(alpha * o_clf + (1 - alpha) * o_rank, rel=1e-5)
    p_clf, p_rank = _jrc_oracle(y, zz, None)
    got = jrc_terms(tf.constant(y), tf.constant(zz))
    assert float(got[0]) == pytest.approx(p_clf, rel=1e-5) and float(got[1]) == pytest.approx(p_rank, rel=1e-5)


def test_jrc_clf_term_is_bce_on_the_logit_difference():
    # Eq. 6 with weights = Eq. 15 BCE on z1 - z0 (the model's `logit` under the JRC head).
    y, _, w = _batch(7, beta=0.4, pad=2)
    zz = np.random.default_rng(7).normal(size=(len(y), 2)).astype(np.float32)
    clf, _ = jrc_terms(tf.constant(y), tf.constant(zz), tf.constant(w))
    assert float(clf) == pytest.approx(_bce_oracle(y, zz[:, 1] - zz[:, 0], w), rel=1e-5)


# ----------------------------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("kind", ["net", "ce"])
def test_list_analytic_gradient(kind):
    y, z, w = _batch(11, beta=0.3, pad=3)
    zv = tf.Variable(z.astype(np.float64))
    fn = list_net if kind == "net" else list_ce
    with tf.GradientTape() as tape:
        loss = fn(tf.constant(y), zv, tf.constant(w))
    g = tape.gradient(loss, zv).numpy()
    np.testing.assert_allclose(g, _list_grad_oracle(y, z, w, kind), rtol=1e-9, atol=1e-12)
    assert np.all(g[y < 0] == 0.0)


def test_list_net_gradient_on_a_negative_is_the_mean_softmax_weight():
    # dL/dz_j- = 1/N+ sum_{i in P} softmax_j: every positive's list pushes the negative down by its softmax weight.
    y = np.array([1, 1, 0, 0, 0], np.float32)
    z = np.array([2.0, 1.0, -3.0, -5.0, -1.0])
    zv = tf.Variable(z)
    with tf.GradientTape() as tape:
        loss = list_net(tf.constant(y), zv)
    g = tape.gradient(loss, zv).numpy()
    soft = np.exp(z) / np.exp(z).sum()
    per_positive = np.stack([soft[2:], soft[2:]])  # each positive's list: the same batch softmax
    np.testing.assert_allclose(g[2:], per_positive.sum(0) / 2, rtol=1e-10)
    assert np.all(g[2:] > 0)  # pushes every negative down
    np.testing.assert_allclose(g[:2], soft[:2] - 0.5, rtol=1e-10)


def test_jrc_analytic_gradient():
    y, _, w = _batch(12, n=16, beta=0.3, pad=2)
    zz = np.random.default_rng(3).normal(size=(16, 2))
    zv = tf.Variable(zz)
    with tf.GradientTape(persistent=True) as tape:
        clf, rank = jrc_terms(tf.constant(y), zv, tf.constant(w))
    g_clf, g_rank = tape.gradient(clf, zv).numpy(), tape.gradient(rank, zv).numpy()
    valid = y >= 0
    wd = np.where(y == 1, w, 1.0)
    n = valid.sum()
    onehot = np.stack([(y == 0), (y == 1)], 1).astype(float)
    soft = np.exp(zz) / np.exp(zz).sum(1, keepdims=True)
    exp_clf = np.where(valid[:, None], wd[:, None] * (soft - onehot) / n, 0)
    exp_rank = np.zeros_like(zz)
    for c in (0, 1):
        in_c = valid & (y == c)
        s_c = wd[in_c].sum()
        q = np.where(valid, wd * np.exp(zz[:, c]), 0)
        q = q / q.sum()
        exp_rank[:, c] = (s_c * q - np.where(in_c, wd, 0)) / n
    np.testing.assert_allclose(g_clf, exp_clf, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(g_rank, exp_rank, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", ["list_net", "list_ce", "jrc"])
def test_numeric_gradient(name):
    rng = np.random.default_rng(5)
    y = tf.constant([1.0, 0.0, 1.0, 0.0, -1.0, 0.0], tf.float64)
    w = tf.constant([0.3, 1.0, 0.3, 1.0, 1.0, 1.0], tf.float64)
    if name == "jrc":
        x0 = tf.constant(rng.normal(size=(6, 2)))
        f = lambda z: jrc(y, z, w, alpha=0.3)  # noqa: E731
    else:
        x0 = tf.constant(rng.normal(size=6))
        fn = FUNCS[name][0]
        f = lambda z: fn(y, z, w)  # noqa: E731
    theoretical, numerical = tf.test.compute_gradient(f, [x0])
    np.testing.assert_allclose(theoretical[0], numerical[0], atol=1e-6)


# ---------------------------------------------------------------------------------------------- edge cases


def _value_and_grad(fn, y, z, w=None):
    zv = tf.Variable(z)
    with tf.GradientTape() as tape:
        loss = fn(tf.constant(y, zv.dtype), zv, None if w is None else tf.constant(w, zv.dtype))
    return float(loss), tape.gradient(loss, zv).numpy()


@pytest.mark.parametrize("name", sorted(FUNCS))
def test_list_edge_cases(name):
    fn, oracle = FUNCS[name]
    z = np.array([0.2, -0.4, 1.0], np.float32)
    # No positive: 0 with zero gradient.
    v, g = _value_and_grad(fn, [0.0, 0.0, 0.0], z)
    assert v == 0.0 and np.all(g == 0)
    # No negative: the softmax over positives only.
    v, g = _value_and_grad(fn, [1.0, 1.0, 1.0], z, [0.5, 0.5, 0.5])
    assert v == pytest.approx(oracle([1, 1, 1], z, [0.5] * 3), rel=1e-5) and np.all(np.isfinite(g))
    # One element: unweighted 0 (its own softmax is 1); weighted log(w) (its weight is in the denominator only).
    v, g = _value_and_grad(fn, [1.0], np.array([0.7], np.float32))
    assert v == pytest.approx(0.0, abs=1e-6) and np.all(np.abs(g) < 1e-6)
    v, _ = _value_and_grad(fn, [1.0], np.array([0.7], np.float32), [0.5])
    assert v == pytest.approx(np.log(0.5), rel=1e-5)
    v, g = _value_and_grad(fn, [0.0], np.array([0.7], np.float32))
    assert v == 0.0 and np.all(g == 0)
    # All padding: 0, zero gradient.
    v, g = _value_and_grad(fn, [-1.0, -1.0, -1.0], z, [0.5, 1, 1])
    assert v == 0.0 and np.all(g == 0)
    # Huge logits: finite loss and gradients; equal to the float64 oracle (exp(80) is fine in float64).
    y = [1.0, 0.0, 1.0, 0.0, -1.0]
    zh = np.array([80.0, -80.0, -80.0, 80.0, 1e30], np.float32)
    v, g = _value_and_grad(fn, y, zh, [0.5, 1, 0.5, 1, 1])
    assert np.isfinite(v) and np.all(np.isfinite(g)) and g[-1] == 0
    assert v == pytest.approx(oracle(y, zh, [0.5, 1, 0.5, 1, 1]), rel=1e-5)


def test_jrc_edge_cases():
    zz = np.array([[0.1, -0.3], [0.5, 0.2], [-1.0, 0.4]], np.float32)
    for y in ([0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [1.0, 0.0, -1.0]):
        v, g = _value_and_grad(lambda a, b, c: jrc(a, b, c, 0.4), y, zz, [0.5, 1, 1])
        o = _jrc_oracle(y, zz, [0.5, 1, 1])
        assert v == pytest.approx(0.4 * o[0] + 0.6 * o[1], rel=1e-5) and np.all(np.isfinite(g))
    # No positives: the click column gets only the classification gradient (no list of clicks to rank).
    zv = tf.Variable(zz)
    with tf.GradientTape() as tape:
        _, rank = jrc_terms(tf.constant([0.0, 0.0, 0.0]), zv)
    assert np.all(tape.gradient(rank, zv).numpy()[:, 1] == 0)
    # One element: the rank term is 0 unweighted.
    assert float(jrc_terms(tf.constant([1.0]), tf.constant([[0.3, 0.9]]))[1]) == pytest.approx(0.0, abs=1e-7)
    # All padding: 0 and zero gradient.
    v, g = _value_and_grad(lambda a, b, c: jrc(a, b, c), [-1.0, -1.0, -1.0], zz)
    assert v == 0.0 and np.all(g == 0)
    # Huge logits.
    zh = np.array([[80.0, -80.0], [-80.0, 80.0], [80.0, 80.0], [-80.0, -80.0]], np.float32)
    y = [1.0, 0.0, 1.0, 0.0]
    v, g = _value_and_grad(lambda a, b, c: jrc(a, b, c), y, zh, [0.5, 1, 0.5, 1])
    o = _jrc_oracle(y, zh, [0.5, 1, 0.5, 1])
    assert np.all(np.isfinite(g)) and v == pytest.approx(0.5 * o[0] + 0.5 * o[1], rel=1e-5)
    with pytest.raises(ValueError, match=r"\[batch, 2\]"):
        jrc(tf.constant([1.0]), tf.constant([0.3]))


def test_masked_logsumexp():
    x = tf.constant([[1.0, 2.0, 1e30], [-80.0, 80.0, 3.0]])
    mask = tf.constant([[True, True, False], [False, False, False]])
    out = masked_logsumexp(x, mask, axis=1).numpy()
    assert out[0] == pytest.approx(np.log(np.exp(1) + np.exp(2)), rel=1e-6) and out[1] == 0.0


# ------------------------------------------------------------------------------------------ Keras classes


def _keras_inputs(seed=0, n=24, beta=0.5):
    y, z, w = _batch(seed, n=n, beta=beta, pad=2)
    zz = np.random.default_rng(seed).normal(size=(n, 2)).astype(np.float32)
    y_pred = {"logit": tf.constant(z), "probability": tf.sigmoid(z), "logits": tf.constant(zz)}
    return y, z, w, zz, y_pred


@pytest.mark.parametrize("name,alpha,rank_oracle,component", [
    ("combined_list", 0.3, _list_net_oracle, "list_net"),
    ("rcr", 0.7, _list_ce_oracle, "list_ce"),
])
def test_combined_losses(name, alpha, rank_oracle, component):
    y, z, w, _, y_pred = _keras_inputs()
    loss = losses.get(name, alpha=alpha)
    assert loss.components == ("bce", component)
    total, terms = loss.compute_terms(tf.constant(y), y_pred, tf.constant(w))
    bce, rank = _bce_oracle(y, z, w), rank_oracle(y, z, w)
    assert float(terms["bce"]) == pytest.approx(bce, rel=1e-5)
    assert float(terms[component]) == pytest.approx(rank, rel=1e-5)
    assert float(total) == pytest.approx(alpha * bce + (1 - alpha) * rank, rel=1e-5)
    assert float(loss(tf.constant(y), tf.constant(z), tf.constant(w))) == pytest.approx(float(total), rel=1e-6)
    # Edge: no positive -> the ranking term is 0, BCE remains.
    y0 = np.where(y == 1, 0.0, y)
    assert float(loss(tf.constant(y0), y_pred, tf.constant(w))) == pytest.approx(alpha * _bce_oracle(y0, z, w),
                                                                                 rel=1e-5)
    # Huge logits: the value is the oracle's (BCE through log(1 + e^x) = logaddexp(0, x), since 1 - sigma(80)
    # rounds to 0 even in float64; the list terms' float64 oracles hold at |z| = 80) and the gradient finite.
    zh_np = np.where(np.arange(len(z)) % 2 == 0, 80.0, -80.0)
    zh = tf.Variable(zh_np.astype(np.float32))
    with tf.GradientTape() as tape:
        v = loss(tf.constant(y), zh, tf.constant(w))
    yv, zv, wv = _valid(y, zh_np, w)
    bce_huge = float(np.mean(wv * yv * np.logaddexp(0.0, -zv) + (1 - yv) * np.logaddexp(0.0, zv)))
    assert bce_huge > 10  # 12 of the 22 rows sit on the wrong side of their label at |z| = 80
    assert float(v) == pytest.approx(alpha * bce_huge + (1 - alpha) * rank_oracle(y, zh_np, w), rel=1e-5)
    assert np.all(np.isfinite(tape.gradient(v, zh).numpy()))


@pytest.mark.parametrize("name,oracle", [("list_net", _list_net_oracle), ("list_ce", _list_ce_oracle)])
def test_single_list_losses_take_dict_tensor_and_weights(name, oracle):
    y, z, w, _, y_pred = _keras_inputs(1)
    loss = losses.get(name)
    a = float(loss(tf.constant(y), y_pred, tf.constant(w)))
    b = float(loss(tf.constant(y), tf.constant(z), tf.constant(w)))
    assert a == b == pytest.approx(oracle(y, z, w), rel=1e-5)
    assert float(loss(tf.constant(y), tf.constant(z))) == pytest.approx(oracle(y, z), rel=1e-5)


def test_jrc_class_reads_logits():
    y, _, w, zz, y_pred = _keras_inputs(2)
    loss = losses.get("jrc", alpha=0.25)
    assert loss.components == ("jrc_clf", "jrc_rank")
    total, terms = loss.compute_terms(tf.constant(y), y_pred, tf.constant(w))
    o_clf, o_rank = _jrc_oracle(y, zz, w)
    assert float(terms["jrc_clf"]) == pytest.approx(o_clf, rel=1e-5)
    assert float(terms["jrc_rank"]) == pytest.approx(o_rank, rel=1e-5)
    assert float(total) == pytest.approx(0.25 * o_clf + 0.75 * o_rank, rel=1e-5)
    assert float(loss(tf.constant(y), tf.constant(zz), tf.constant(w))) == pytest.approx(float(total), rel=1e-6)
    with pytest.raises(ValueError, match="'logits'.*head='jrc'"):
        loss(tf.constant(y), {"logit": tf.constant(zz[:, 0])})


@pytest.mark.parametrize("name,cfg", [("list_net", {"pairing": "global"}), ("list_ce", {}),
                                      ("combined_list", {"alpha": 0.2, "pairing": "global"}),
                                      ("rcr", {"alpha": 0.8}), ("jrc", {"alpha": 0.6, "pairing": "global"})])
def test_get_config_round_trip_and_tf_function(name, cfg):
    loss = losses.get(name, **cfg)
    config = loss.get_config()
    assert config["pairing"] == cfg.get("pairing", "replica")
    if name not in ("list_net", "list_ce"):
        assert config["alpha"] == cfg.get("alpha", 0.5)
    clone = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(clone) is type(loss) and clone.get_config() == config
    assert losses.get(name, **{k: v for k, v in config.items() if k != "name"}).get_config() == config
    y, _, w, _, y_pred = _keras_inputs(3)
    eager = float(loss(tf.constant(y), y_pred, tf.constant(w)))
    assert float(clone(tf.constant(y), y_pred, tf.constant(w))) == eager
    graph = tf.function(lambda a, b, c: loss(a, b, c))(tf.constant(y), y_pred, tf.constant(w))
    assert float(graph) == pytest.approx(eager, rel=1e-6)


def test_defaults_and_argument_errors():
    for name in ("combined_list", "rcr", "jrc"):
        assert name in losses.names()
        assert losses.get(name).alpha == 0.5
        with pytest.raises(ValueError, match="alpha"):
            losses.get(name, alpha=1.5)
    for name in ("list_net", "list_ce", "combined_list", "rcr", "jrc"):
        assert losses.get(name).pairing == "replica"
        with pytest.raises(ValueError, match="pairing"):
            losses.get(name, pairing="batch")
    with pytest.raises(ValueError, match="no argument 'alpha'"):
        losses.get("list_net", alpha=0.5)


# ------------------------------------------------------------------------------------ two replicas, global


def _two_replica_value_and_grads(loss, y, y_pred, w):
    """The loss and d loss / d y_pred on 2 replicas (MirroredStrategy on the 2 logical CPUs of conftest)."""
    from tfrec.devices import make_strategy

    strategy = make_strategy(2, prefer_gpu=False)
    keys = sorted(y_pred)
    ds = tf.data.Dataset.from_tensors((y, w, *[y_pred[k] for k in keys]))
    batch = next(iter(strategy.experimental_distribute_dataset(ds)))

    def step(yy, ww, *preds):
        with tf.GradientTape() as tape:
            tape.watch(preds)
            value = loss(yy, dict(zip(keys, preds)), ww)
        return (value, *tape.gradient(value, preds, unconnected_gradients=tf.UnconnectedGradients.ZERO))

    out = tf.function(lambda args: strategy.run(step, args=args))(batch)
    local = [strategy.experimental_local_results(o) for o in out]
    return [float(v) for v in local[0]], {k: np.concatenate([g.numpy() for g in local[i + 1]])
                                           for i, k in enumerate(keys)}


@pytest.mark.parametrize("name,cfg", [("jrc", {"alpha": 0.3}), ("combined_list", {}),
                                      ("combined_contrastive", {"alpha": 0.5}),
                                      ("supervised_contrastive", {})])
def test_global_pairing_on_two_replicas_is_the_full_batch_loss(name, cfg):
    # Tensors of different shapes ([batch], [batch, 2], [batch, d]) are gathered together
    # (tfrec.losses.distributed.gather): each replica computes the global-batch loss, and each replica's rows get
    # R = 2 times the full-batch gradient (the model divides by R).
    y, z, w = _batch(21, n=16, beta=0.5)
    rng = np.random.default_rng(21)
    y_pred = {"logit": z, "logits": rng.normal(size=(16, 2)).astype(np.float32),
              "embedding": rng.normal(size=(16, 5)).astype(np.float32)}
    loss = losses.get(name, pairing="global", **cfg)
    pred_t = {k: tf.constant(v) for k, v in y_pred.items()}
    with tf.GradientTape() as tape:
        tape.watch(list(pred_t.values()))
        full = loss(tf.constant(y), pred_t, tf.constant(w))
    full_grads = dict(zip(pred_t, tape.gradient(full, list(pred_t.values()),
                                                unconnected_gradients=tf.UnconnectedGradients.ZERO)))
    values, grads = _two_replica_value_and_grads(loss, y, y_pred, w)
    assert values == pytest.approx([float(full)] * 2, rel=1e-5)
    for k, g in full_grads.items():
        np.testing.assert_allclose(grads[k], 2 * g.numpy(), rtol=1e-4, atol=1e-7)
    # replica pairing is a different loss (each replica ranks its own half)
    local, _ = _two_replica_value_and_grads(losses.get(name, pairing="replica", **cfg), y, y_pred, w)
    assert abs(np.mean(local) - float(full)) > 1e-4
