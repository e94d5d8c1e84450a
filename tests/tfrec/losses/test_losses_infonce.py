"""Margin InfoNCE (HCCP Eq. 5, Algorithm 1) and InfoNCE: an Eq. 5 oracle written independently of Algorithm 1
(NumPy, loops over users and positives), the beta blend's limits, the Eq. 10 gradient, edge cases, the Keras
classes' contract, and the beta schedule through ``model.fit`` (1 device and 2 replicas) and checkpoints."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tfrec import losses
from tfrec.devices import make_strategy
from tfrec.losses.classes.preranking import InfoNCE, MarginInfoNCE
from tfrec.losses.infonce import info_nce, margin_info_nce
from tfrec.models import RankingModel

M, TAU, NEG_MIN = 0.9, 0.1, -1e9


def _lse(x):
    x = np.asarray(x, np.float64)
    top = x.max()
    return top + np.log(np.exp(x - top).sum())


def _batch(B=4, K=6, d=3, seed=0, scale=0.6):
    """User embeddings [B, d], item embeddings [B, K, d], roles [B, K] (every role present somewhere)."""
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(B, d)) * scale
    items = rng.normal(size=(B, K, d)) * scale
    roles = rng.integers(0, 4, size=(B, K))
    roles[0, :4] = [1, 2, 3, 1]  # two positives, a hard and an easy negative in row 0
    return u, items, roles


def _oracle_eq5(u, items, roles, m=M, tau=TAU):
    """HCCP Eq. 5 from the embeddings, in float64, with explicit loops (no Algorithm 1):
    -1/|U| sum_u sum_{j pos} log( e^{v_j phi_j/tau} / (e^{v_j phi_j/tau} + sum_hard e^{v_i phi_i/tau}
    + sum_easy e^{v_k cos_k/tau}) ), v = ||u|| ||i||, phi = cos - m."""
    B, K = roles.shape
    total = 0.0
    for b in range(B):
        def v_cos(k):
            v = np.linalg.norm(u[b]) * np.linalg.norm(items[b, k])
            return v, (u[b] @ items[b, k]) / v
        hard = [v * (c - m) / tau for v, c in (v_cos(k) for k in range(K) if roles[b, k] == 2)]
        easy = [v * c / tau for v, c in (v_cos(k) for k in range(K) if roles[b, k] == 3)]
        for j in range(K):
            if roles[b, j] != 1:
                continue
            v, c = v_cos(j)
            pos = v * (c - m) / tau
            total += -(pos - _lse([pos] + hard + easy))
    return total / B


def _oracle_plain(u, items, roles, tau=TAU):
    """Plain InfoNCE: the positive against all of its row's hard and easy negatives, raw logits."""
    total = 0.0
    logits = np.einsum("bd,bkd->bk", u, items)
    for b in range(roles.shape[0]):
        negs = [logits[b, k] / tau for k in range(roles.shape[1]) if roles[b, k] in (2, 3)]
        for j in np.flatnonzero(roles[b] == 1):
            pos = logits[b, j] / tau
            total += -(pos - _lse([pos] + negs))
    return total / roles.shape[0]


def _flat(u, items, roles, dtype=tf.float32):
    """The function's inputs in Algorithm 1's layout ([B*K] each), from the embeddings."""
    B, K = roles.shape
    logits = np.einsum("bd,bkd->bk", u, items)
    u_norm = np.repeat(np.linalg.norm(u, axis=1)[:, None], K, axis=1)
    i_norm = np.linalg.norm(items, axis=2)
    r = roles.reshape(-1)
    return dict(logits=tf.constant(logits.reshape(-1), dtype), u_norm=tf.constant(u_norm.reshape(-1), dtype),
                i_norm=tf.constant(i_norm.reshape(-1), dtype), p_mask=tf.constant(r == 1),
                n_hard_mask=tf.constant(r == 2), n_easy_mask=tf.constant(r == 3), B=B, K=K)


def _margin(args, beta, m=M, tau=TAU, neg_min=NEG_MIN):
    return margin_info_nce(**args, margin=m, beta=beta, temperature=tau, neg_min=neg_min)


def _plain(args, tau=TAU, neg_min=NEG_MIN):
    a = {k: v for k, v in args.items() if k not in ("u_norm", "i_norm")}
    return info_nce(**a, temperature=tau, neg_min=neg_min)


def _outputs(u, items, dtype=tf.float32):
    return {"logit": tf.constant(np.einsum("bd,bkd->bk", u, items), dtype),
            "user_norm": tf.constant(np.linalg.norm(u, axis=1), dtype),
            "item_norm": tf.constant(np.linalg.norm(items, axis=2), dtype)}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beta_zero_equals_eq5_times_num_users(seed):
    u, items, roles = _batch(B=5, K=7, seed=seed)
    want = _oracle_eq5(u, items, roles)
    got = float(_margin(_flat(u, items, roles), beta=0.0))
    # Algorithm 1 returns reduce_sum over the positives = |U| * Eq. 5 (|U| = B = 5 requests).
    assert got == pytest.approx(5 * want, rel=1e-5)
    assert got != pytest.approx(5 * _oracle_plain(u, items, roles), rel=1e-3)  # the margin matters here
    # The class divides by B: it is Eq. 5 itself.
    loss = losses.get("margin_info_nce", beta_init=0.0)
    assert float(loss(tf.constant(roles), _outputs(u, items))) == pytest.approx(want, rel=1e-5)


def test_huge_beta_equals_plain_info_nce():
    u, items, roles = _batch(B=5, K=7, seed=3)
    args = _flat(u, items, roles)
    plain = float(_plain(args))
    assert plain == pytest.approx(5 * _oracle_plain(u, items, roles), rel=1e-5)
    assert float(_margin(args, beta=1e12)) == pytest.approx(plain, rel=1e-5)
    assert float(losses.get("info_nce")(tf.constant(roles), _outputs(u, items))) == pytest.approx(plain / 5, rel=1e-5)


@pytest.mark.parametrize("beta", [0.5, 3.0])
def test_intermediate_beta_is_eq5_with_margin_over_one_plus_beta(beta):
    # l_update = (logits - m v + beta * logits) / (1 + beta) = logits - (m / (1 + beta)) v: Eq. 5 at margin m/(1+beta).
    u, items, roles = _batch(B=3, K=6, seed=4)
    got = float(_margin(_flat(u, items, roles), beta=beta))
    assert got == pytest.approx(3 * _oracle_eq5(u, items, roles, m=M / (1 + beta)), rel=1e-5)


def test_margin_goes_on_positives_and_hard_negatives_only():
    # One positive, one hard and one easy negative, all with unit norms (v = 1): the margin logits are y - m for
    # the positive and the hard negative and y for the easy negative.
    y = np.array([0.3, 0.2, 0.1])
    args = dict(logits=tf.constant(y, tf.float64), u_norm=tf.ones([3], tf.float64), i_norm=tf.ones([3], tf.float64),
                p_mask=tf.constant([True, False, False]), n_hard_mask=tf.constant([False, True, False]),
                n_easy_mask=tf.constant([False, False, True]), B=1, K=3)
    s = np.array([y[0] - M, y[1] - M, y[2]]) / TAU
    assert float(_margin(args, beta=0.0)) == pytest.approx(-(s[0] - _lse(s)), rel=1e-9)


def test_gradient_matches_eq10():
    """d/dy of Algorithm 1 at beta = 0 (y = logits): per positive j of the row, with a = (y - m v)/tau for the
    positive and hard negatives and a = y/tau for easy negatives, D_j = e^{a_j} + sum_hard e^{a_i} + sum_easy e^{a_k}:
    hard negative n: (1/tau) e^{a_n} / D_j (Eq. 10, first line, with Eq. 5's exponents); easy k: (1/tau) e^{a_k}/D_j;
    the positive j: (1/tau) (e^{a_j}/D_j - 1). Also the same hard-negative gradient in Eq. 10's second-line form."""
    u, items, roles = _batch(B=3, K=6, d=4, seed=5, scale=0.8)
    args = _flat(u, items, roles, tf.float64)
    y = tf.Variable(args.pop("logits"))
    with tf.GradientTape() as tape:
        loss = margin_info_nce(y, **args, margin=M, beta=0.0, temperature=TAU, neg_min=NEG_MIN)
    g = tape.gradient(loss, y).numpy().reshape(roles.shape)
    logits = np.einsum("bd,bkd->bk", u, items)
    v = np.linalg.norm(u, axis=1)[:, None] * np.linalg.norm(items, axis=2)
    want = np.zeros_like(logits)
    checked_hard = 0
    for b in range(roles.shape[0]):
        a = np.where(roles[b] == 3, logits[b] / TAU, (logits[b] - M * v[b]) / TAU)
        negs = np.flatnonzero(np.isin(roles[b], (2, 3)))
        for j in np.flatnonzero(roles[b] == 1):
            D = np.exp(a[j]) + np.exp(a[negs]).sum()
            want[b, j] += (np.exp(a[j]) / D - 1) / TAU
            want[b, negs] += np.exp(a[negs]) / D / TAU
        for n in np.flatnonzero(roles[b] == 2):
            # Eq. 10's second line (divide through by e^{a_n}), with Eq. 5's exponents:
            # 1/tau * 1 / (1 + sum_{i in hard u {j} \ n} e^{(y_i - y_n - m (v_i - v_n))/tau}
            #                + sum_easy e^{(y_k - y_n + m v_n)/tau})
            second = 0.0
            hard_others = [i for i in np.flatnonzero(roles[b] == 2) if i != n]
            easy = np.flatnonzero(roles[b] == 3)
            for j in np.flatnonzero(roles[b] == 1):
                s = 1.0
                for i in hard_others + [j]:
                    s += np.exp((logits[b, i] - logits[b, n] - M * (v[b, i] - v[b, n])) / TAU)
                for k in easy:
                    s += np.exp((logits[b, k] - logits[b, n] + M * v[b, n]) / TAU)
                second += 1.0 / (TAU * s)
            np.testing.assert_allclose(g[b, n], second, rtol=1e-9)
            checked_hard += int(np.any(roles[b] == 1))
    assert checked_hard >= 1
    np.testing.assert_allclose(g, want, rtol=1e-9, atol=1e-12)
    assert np.all(g[roles == 0] == 0.0)  # unused slots get no gradient


def test_numeric_gradient_of_logits_and_norms():
    u, items, roles = _batch(B=2, K=5, d=3, seed=6)
    args = _flat(u, items, roles, tf.float64)
    x0 = [args.pop("logits"), args.pop("u_norm"), args.pop("i_norm")]

    def f(logits, u_norm, i_norm):
        return margin_info_nce(logits, u_norm, i_norm, **args, margin=M, beta=0.3, temperature=TAU, neg_min=NEG_MIN)

    theoretical, numerical = tf.test.compute_gradient(f, x0)
    for t, n in zip(theoretical, numerical):
        np.testing.assert_allclose(t, n, atol=1e-5)
    assert np.abs(theoretical[2]).max() > 1e-3  # the margin term -m * u_norm * i_norm reaches the norms


def _roles_case(name):
    if name == "user_without_positives":
        return np.array([[1, 2, 3, 0], [2, 2, 3, 3]])
    if name == "no_hard_negatives":
        return np.array([[1, 3, 3, 0], [3, 1, 0, 3]])
    if name == "no_easy_negatives":
        return np.array([[1, 2, 2, 0], [2, 1, 0, 1]])
    if name == "no_negatives":
        return np.array([[1, 1, 0, 0], [1, 0, 0, 0]])
    if name == "all_masked":
        return np.zeros((2, 4), int)
    raise KeyError(name)


@pytest.mark.parametrize("case", ["user_without_positives", "no_hard_negatives", "no_easy_negatives", "no_negatives",
                                  "all_masked"])
def test_edge_cases_match_oracle_and_are_finite(case):
    roles = _roles_case(case)
    u, items, _ = _batch(B=2, K=4, seed=7)
    args = _flat(u, items, roles)
    y = tf.Variable(args.pop("logits"))
    with tf.GradientTape(persistent=True) as tape:
        m_loss = margin_info_nce(y, **args, margin=M, beta=0.0, temperature=TAU, neg_min=NEG_MIN)
        p_loss = info_nce(y, args["p_mask"], args["n_hard_mask"], args["n_easy_mask"], 2, 4, TAU, NEG_MIN)
    assert float(m_loss) == pytest.approx(2 * _oracle_eq5(u, items, roles), rel=1e-5, abs=1e-6)
    assert float(p_loss) == pytest.approx(2 * _oracle_plain(u, items, roles), rel=1e-5, abs=1e-6)
    for loss in (m_loss, p_loss):
        g = tape.gradient(loss, y)
        assert np.isfinite(float(loss)) and np.all(np.isfinite(g.numpy()))
    if case in ("no_negatives", "all_masked"):
        assert float(m_loss) == 0.0 and float(p_loss) == 0.0
        assert np.all(tape.gradient(m_loss, y).numpy() == 0.0)


def test_one_item_and_huge_logits_and_zero_norms():
    one = dict(logits=tf.constant([2.0]), u_norm=tf.constant([1.5]), i_norm=tf.constant([2.0]),
               p_mask=tf.constant([True]), n_hard_mask=tf.constant([False]), n_easy_mask=tf.constant([False]),
               B=1, K=1)
    assert float(_margin(one, beta=0.0)) == 0.0  # a positive alone: -log(1)
    # Huge logits (|u.i| = 1e4, norms 1e2): finite and equal to the exact value.
    huge = dict(logits=tf.constant([1e4, -1e4, 1e4, 5e3]), u_norm=tf.fill([4], 100.0), i_norm=tf.fill([4], 100.0),
                p_mask=tf.constant([True, False, False, False]), n_hard_mask=tf.constant([False, True, True, False]),
                n_easy_mask=tf.constant([False, False, False, True]), B=1, K=4)
    y = tf.Variable(huge.pop("logits"))
    with tf.GradientTape() as tape:
        loss = margin_info_nce(y, **huge, margin=M, beta=0.0, temperature=TAU, neg_min=NEG_MIN)
    s = np.array([1e4 - M * 1e4, -1e4 - M * 1e4, 1e4 - M * 1e4, 5e3]) / TAU
    assert np.isfinite(float(loss)) and float(loss) == pytest.approx(-(s[0] - _lse(s)), rel=1e-5)
    assert np.all(np.isfinite(tape.gradient(loss, y).numpy()))
    # Zero embeddings (v = 0): cos = 0 / 1e-10 = 0, no NaN.
    zero = dict(logits=tf.zeros([3]), u_norm=tf.zeros([3]), i_norm=tf.zeros([3]),
                p_mask=tf.constant([True, False, False]),
                n_hard_mask=tf.constant([False, True, False]), n_easy_mask=tf.constant([False, False, True]), B=1, K=3)
    assert float(_margin(zero, beta=0.0)) == pytest.approx(np.log(3), rel=1e-6)


def test_unused_slots_are_excluded_exactly():
    # Appending unused slots (role 0) with any logits does not change the loss: neg_min / tau underflows to 0.
    u, items, roles = _batch(B=3, K=5, seed=8)
    extra_items = np.random.default_rng(9).normal(size=(3, 3, 3)) * 5.0
    wide_items = np.concatenate([items, extra_items], axis=1)
    wide_roles = np.concatenate([roles, np.zeros((3, 3), int)], axis=1)
    a = float(_margin(_flat(u, items, roles), beta=0.0))
    b = float(_margin(_flat(u, wide_items, wide_roles), beta=0.0))
    assert a == pytest.approx(b, rel=1e-6)


def test_class_contract_norm_shapes_roles_and_errors():
    u, items, roles = _batch(B=3, K=5, seed=10)
    out = _outputs(u, items)
    loss = MarginInfoNCE(beta_init=0.0)
    base = float(loss(tf.constant(roles), out))
    assert base == pytest.approx(_oracle_eq5(u, items, roles), rel=1e-5)
    for un in (out["user_norm"][:, None], tf.broadcast_to(out["user_norm"][:, None], [3, 5])):
        assert float(loss(tf.constant(roles), {**out, "user_norm": un})) == pytest.approx(base, rel=1e-6)
    # Float roles and -1 for unused slots read the same as int roles with 0.
    float_roles = np.where(roles == 0, -1, roles).astype(np.float32)
    assert float(loss(tf.constant(float_roles), out)) == pytest.approx(base, rel=1e-6)
    # InfoNCE takes the dict or the logit tensor.
    plain = InfoNCE()
    assert float(plain(tf.constant(roles), out)) == pytest.approx(float(plain(tf.constant(roles), out["logit"])))
    # Custom keys.
    keyed = MarginInfoNCE(beta_init=0.0, logit_key="s", user_norm_key="un", item_norm_key="in")
    assert float(keyed(tf.constant(roles), {"s": out["logit"], "un": out["user_norm"], "in": out["item_norm"]})) == \
        pytest.approx(base, rel=1e-6)
    with pytest.raises(ValueError, match="no 'item_norm'"):
        loss(tf.constant(roles), {"logit": out["logit"], "user_norm": out["user_norm"]})
    with pytest.raises(ValueError, match="output dict"):
        loss(tf.constant(roles), out["logit"])
    with pytest.raises(ValueError, match="sample_weight"):
        loss(tf.constant(roles), out, tf.ones([3]))
    with pytest.raises(ValueError, match=r"\[batch, list_size\]"):
        plain(tf.constant(roles.reshape(-1)), out["logit"])


def test_get_config_round_trip_registry_and_validation():
    for name, cls in (("info_nce", InfoNCE), ("margin_info_nce", MarginInfoNCE)):
        assert name in losses.names() and isinstance(losses.get(name), cls)
    loss = losses.get("margin_info_nce", margin=0.5, temperature=0.2, beta_init=10.0, scale=0.9, neg_min=-1e8,
                      logit_key="z")
    clone = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(clone) is MarginInfoNCE and clone.get_config() == loss.get_config()
    assert clone.get_config()["scale"] == 0.9 and _beta(clone) == 10.0
    plain = losses.get("info_nce", temperature=0.5)
    assert keras.losses.deserialize(keras.losses.serialize(plain)).get_config() == plain.get_config()
    with pytest.raises(ValueError, match="scale"):
        losses.get("margin_info_nce", scale=0.0)
    with pytest.raises(ValueError, match="scale"):
        losses.get("margin_info_nce", scale=1.5)
    with pytest.raises(ValueError, match="temperature"):
        losses.get("info_nce", temperature=0.0)
    with pytest.raises(ValueError, match="neg_min"):
        losses.get("margin_info_nce", neg_min=1.0)
    with pytest.raises(ValueError, match="margin"):
        losses.get("margin_info_nce", margin=-0.1)
    with pytest.raises(ValueError, match="no argument 'pairing'"):
        losses.get("margin_info_nce", pairing="global")


def test_default_neg_min_fill_underflows_to_zero():
    # exp(neg_min / tau - max) is exactly 0 in float32 for the defaults, so the fill never enters a softmax.
    d = MarginInfoNCE()
    assert float(tf.exp(tf.constant(d.neg_min / d.temperature, tf.float32) - tf.constant(-1e3))) == 0.0


# -- the beta schedule: eager, model.fit on 1 device and on 2 replicas, checkpoints ----------------------------------

N_USERS, N_ITEMS, DIM, K = 16, 40, 4, 6


class TwoTower(RankingModel):
    """User and item embeddings; ``logit`` = u . i [B, K], norms for the margin, ``probability`` for completeness."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.users = keras.layers.Embedding(N_USERS, DIM, embeddings_initializer=keras.initializers.RandomNormal(
            stddev=0.5, seed=1), name="users")
        self.items = keras.layers.Embedding(N_ITEMS, DIM, embeddings_initializer=keras.initializers.RandomNormal(
            stddev=0.5, seed=2), name="items")

    def input_signature(self):
        return {"user": tf.TensorSpec([None], tf.int32), "items": tf.TensorSpec([None, K], tf.int32)}

    def call(self, inputs, training=False):
        u = self.users(inputs["user"])
        i = self.items(inputs["items"])
        logit = tf.einsum("bd,bkd->bk", u, i)
        return {"logit": logit, "user_norm": tf.norm(u, axis=-1), "item_norm": tf.norm(i, axis=-1),
                "probability": tf.sigmoid(logit)}

    def compute_metrics(self, x, y, y_pred, sample_weight):
        # RankingModel's default metrics read point-wise [batch] labels; y here is the [B, K] role tensor.
        return {m.name: m.result() for m in self.metrics if m.name.endswith("loss")}


def _fit_data(B=8, seed=0):
    rng = np.random.default_rng(seed)
    x = {"user": rng.integers(0, N_USERS, B).astype(np.int32),
         "items": rng.integers(0, N_ITEMS, (B, K)).astype(np.int32)}
    roles = rng.choice([0, 1, 2, 3], size=(B, K), p=[0.1, 0.3, 0.3, 0.3]).astype(np.int32)
    roles[:, 0] = 1
    return x, roles


def _build(strategy, loss, init=None, lr=0.5):
    with strategy.scope():
        model = TwoTower()
        model({k: tf.constant(v) for k, v in _fit_data(2)[0].items()})
        if init is not None:
            for v, w in zip(model.trainable_variables, init):
                v.assign(w)
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=lr), loss=loss)
    return model


def _fit(model, strategy, steps, B=8):
    x, roles = _fit_data(B)
    ds = tf.data.Dataset.from_tensors(({k: tf.constant(v) for k, v in x.items()}, tf.constant(roles))).repeat()
    return model.fit(strategy.experimental_distribute_dataset(ds), epochs=1, steps_per_epoch=steps, verbose=0)


def _beta(loss):
    return float(loss.beta.read_value().numpy())  # also a MirroredVariable under a strategy


def test_on_train_step_end_multiplies_beta_by_scale():
    loss = MarginInfoNCE(beta_init=9999.0, scale=0.9)
    assert loss.state() is loss.state() and _beta(loss) == 9999.0
    for _ in range(5):
        loss.on_train_step_end()
    assert _beta(loss) == pytest.approx(9999.0 * 0.9 ** 5, rel=1e-6)
    assert loss.get_config()["beta_init"] == 9999.0  # the config keeps the initial value, the state moves


@pytest.mark.parametrize("replicas", [1, 2])
def test_fit_advances_beta_once_per_step(replicas):
    strategy = make_strategy(replicas)
    loss = losses.get("margin_info_nce", beta_init=9999.0, scale=0.5)
    model = _build(strategy, loss)
    assert strategy.num_replicas_in_sync == replicas
    hist = _fit(model, strategy, steps=3)
    assert _beta(loss) == 9999.0 * 0.5 ** 3  # exact: multiplying by 0.5 is exact in float32
    hist = _fit(model, strategy, steps=2)
    assert _beta(loss) == 9999.0 * 0.5 ** 5
    assert np.isfinite(hist.history["loss"][-1])
    if replicas == 2:  # one variable per device, all equal
        values = [float(v) for v in strategy.experimental_local_results(loss.beta)]
        assert len(values) == 2 and values[0] == values[1] == 9999.0 * 0.5 ** 5


def test_eager_use_before_compile_under_a_strategy():
    # beta made eagerly outside any strategy is re-created (mirrored, same value) when compiled under one.
    loss = losses.get("margin_info_nce", beta_init=8.0, scale=0.5)
    u, items, roles = _batch(B=2, K=6, seed=11)
    loss(tf.constant(roles), _outputs(u, items))
    loss.on_train_step_end()
    strategy = make_strategy(2)
    model = _build(strategy, loss)
    assert model.loss_state is loss.state()
    _fit(model, strategy, steps=2)
    assert [float(v) for v in strategy.experimental_local_results(loss.beta)] == [8.0 * 0.5 ** 3] * 2


def test_two_replicas_equal_one_device():
    # One SGD step on the same global batch: per-row losses divided by the replica's B, then by R by the model.
    probe = TwoTower()
    probe({k: tf.constant(v) for k, v in _fit_data(2)[0].items()})
    init = [v.numpy() for v in probe.trainable_variables]
    results = {}
    for replicas in (1, 2):
        strategy = make_strategy(replicas)
        loss = losses.get("margin_info_nce", beta_init=0.25, scale=0.8)
        model = _build(strategy, loss, init)
        hist = _fit(model, strategy, steps=2)
        results[replicas] = ([v.numpy() for v in model.trainable_variables], hist.history["loss"][0], _beta(loss))
    (w1, l1, b1), (w2, l2, b2) = results[1], results[2]
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(w1, init)) > 1e-3  # the steps moved the weights
    assert l2 == pytest.approx(l1, rel=1e-5)
    assert b1 == b2 == pytest.approx(0.25 * 0.8 ** 2, rel=1e-6)
    for a, b in zip(w1, w2):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_beta_survives_checkpoint_restore(tmp_path):
    strategy = make_strategy(1)
    loss = losses.get("margin_info_nce", beta_init=9999.0, scale=0.5)
    model = _build(strategy, loss)
    _fit(model, strategy, steps=4)
    assert _beta(loss) == 9999.0 / 16
    model.save_weights(str(tmp_path / "w" / "weights"))
    tf.train.Checkpoint(model=model).write(str(tmp_path / "ckpt" / "c"))

    fresh_loss = losses.get("margin_info_nce", beta_init=9999.0, scale=0.5)
    fresh = _build(strategy, fresh_loss)
    assert _beta(fresh_loss) == 9999.0
    fresh.load_weights(str(tmp_path / "w" / "weights"))
    assert _beta(fresh_loss) == 9999.0 / 16

    other_loss = losses.get("margin_info_nce", beta_init=9999.0, scale=0.5)
    other = _build(strategy, other_loss)
    tf.train.Checkpoint(model=other).read(str(tmp_path / "ckpt" / "c")).assert_existing_objects_matched()
    assert _beta(other_loss) == 9999.0 / 16
    # ...and training continues from the restored beta.
    _fit(other, strategy, steps=1)
    assert _beta(other_loss) == 9999.0 / 32
