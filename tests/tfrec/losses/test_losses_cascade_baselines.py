"""COPR and Rethink losses (tfrec.losses.cascade_baselines, Eq. B2-B5): NumPy oracles, analytic gradients, edge
cases (no positive, all-padding lists, one item, huge logits), the Keras classes' contracts and config round trips,
and the Three-Tower ``copr`` / ``rethink`` variants (relaxation net cut from the towers, the exposure task, the
ranker score required)."""

import json

import numpy as np
import pytest
import tensorflow as tf

from tfrec import losses
from tfrec.features import ListwiseSchema
from tfrec.losses import cascade_baselines as cb
from tfrec.losses.classes import COPRPairwise, RankerDistillation, RethinkListwise
from tfrec.models.preranking import ThreeTower

from tests.tfrec.models.test_models_preranking import SMALL, tiny_batch


def _sigmoid(x):
    return np.exp(-np.logaddexp(0.0, -np.asarray(x, np.float64)))


def _dcg_discount(p):
    return 1.0 / np.log2(1.0 + p)


def copr_oracle(z, r, chunk):
    """(B2) and its gradient (weights constant), written out per pair."""
    z = np.asarray(z, np.float64)
    B, K = z.shape
    total, grad = 0.0, np.zeros_like(z)
    for b in range(B):
        idx = [i for i in range(K) if r[b, i] >= 1]
        if not idx:
            continue
        c = {i: (int(r[b, i]) - 1) // chunk for i in idx}
        n_chunks = max(c.values()) + 1
        g = {i: n_chunks - c[i] for i in idx}
        order = sorted(idx, key=lambda i: (-z[b, i], i))
        pos = {i: order.index(i) + 1 for i in idx}
        idcg = sum(gk * _dcg_discount(k + 1) for k, gk in enumerate(sorted(g.values(), reverse=True)))
        for i in idx:
            for j in idx:
                if c[i] < c[j]:
                    w = abs(g[i] - g[j]) * abs(_dcg_discount(pos[i]) - _dcg_discount(pos[j])) / idcg
                    d = z[b, i] - z[b, j]
                    total += w * np.logaddexp(0.0, -d)
                    grad[b, i] += w * (_sigmoid(d) - 1.0)
                    grad[b, j] += w * (1.0 - _sigmoid(d))
    return total / B, grad / B


def softmax_oracle(z, labels):
    z = np.asarray(z, np.float64)
    total, grad = 0.0, np.zeros_like(z)
    for b in range(z.shape[0]):
        v = labels[b] >= 0
        if not v.any():
            continue
        lse = np.log(np.exp(z[b][v] - z[b][v].max()).sum()) + z[b][v].max()
        pos = v & (labels[b] > 0.5)
        total += (lse - z[b][pos]).sum()
        p = np.where(v, np.exp(z[b] - lse), 0.0)
        grad[b] = pos.sum() * p - pos
    return total / z.shape[0], grad / z.shape[0]


def distill_oracle(z, q, mask):
    z = np.asarray(z, np.float64)
    use = mask & (q >= 0)
    s = _sigmoid(z)
    per = -(q * np.log(s) + (1 - q) * np.log(1 - s))
    return np.where(use, per, 0.0).sum() / z.shape[0], np.where(use, s - q, 0.0) / z.shape[0]


def _grad(fn, z):
    z = tf.Variable(np.asarray(z, np.float32))
    with tf.GradientTape() as tape:
        value = fn(z)
    return float(value), tape.gradient(value, z).numpy()


RANKS = np.array([[1, 2, 3, 4, 5, -1], [3, 1, 2, -1, -1, -1], [-1, -1, -1, -1, -1, -1], [2, 1, 6, 4, 3, 5]])


@pytest.mark.parametrize("chunk", [1, 2, 4])
def test_copr_pairwise_oracle_and_gradient(chunk):
    z = np.random.default_rng(chunk).normal(0, 2, RANKS.shape)
    value, grad = _grad(lambda s: cb.copr_pairwise(s, RANKS, chunk), z)
    ref, ref_grad = copr_oracle(z.astype(np.float32), RANKS, chunk)
    assert value == pytest.approx(ref, rel=1e-5)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-4, atol=1e-7)
    assert np.all(grad[RANKS < 1] == 0)  # non-candidates and padding get no gradient


def test_copr_weights_follow_the_current_positions_and_chunks():
    z = np.array([[3.0, 2.0, 1.0]])
    w = cb.delta_ndcg_weights(tf.constant(z), cb.chunk_ids(tf.constant([[1, 2, 3]]), 1)).numpy()[0]
    idcg = 3 * _dcg_discount(1) + 2 * _dcg_discount(2) + 1 * _dcg_discount(3)
    assert w[0, 2] == pytest.approx(2 * (_dcg_discount(1) - _dcg_discount(3)) / idcg)
    assert w[1, 0] == 0 and w[0, 0] == 0  # only pairs with c_i < c_j
    # ranks 1-2 in one chunk of 2: that pair carries no order
    w2 = cb.delta_ndcg_weights(tf.constant(z), cb.chunk_ids(tf.constant([[1, 2, 3]]), 2)).numpy()[0]
    assert w2[0, 1] == 0 and w2[0, 2] > 0 and w2[1, 2] > 0


def test_copr_edge_cases():
    one_chunk, value = cb.copr_pairwise(tf.constant([[1.0, 2.0, 3.0]]), [[1, 2, 3]], chunk_size=10), None
    assert float(one_chunk) == 0.0  # no inter-chunk pair
    value, grad = _grad(lambda s: cb.copr_pairwise(s, [[-1, -1], [-1, -1]]), [[1.0, 2.0], [3.0, 4.0]])
    assert value == 0.0 and np.all(grad == 0)  # all padding
    assert float(cb.copr_pairwise(tf.constant([[5.0]]), [[1]])) == 0.0  # one item
    value, grad = _grad(lambda s: cb.copr_pairwise(s, [[1, 2, 3]]), [[-1e4, 0.0, 1e4]])
    ref, ref_grad = copr_oracle(np.array([[-1e4, 0.0, 1e4]]), np.array([[1, 2, 3]]), 1)
    assert np.isfinite(value) and value == pytest.approx(ref, rel=1e-5)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="chunk_size"):
        cb.copr_pairwise(tf.constant([[1.0]]), [[1]], chunk_size=0)


def test_copr_regularization():
    delta = np.array([[0.5, -2.0, 3.0], [1.0, 1.0, 1.0]], np.float32)
    mask = np.array([[True, True, False], [False, False, False]])
    value, grad = _grad(lambda d: cb.copr_regularization(d, mask), delta)
    assert value == pytest.approx((0.25 + 4.0) / 2)
    np.testing.assert_allclose(grad, np.where(mask, delta, 0.0), rtol=1e-6)  # d/dd (d^2 / B) = 2 d / 2


LABELS = np.array([[1, 0, 0, 1, -1], [0, 0, 0, 0, 0], [-1, -1, -1, -1, -1], [0, 1, 0, 0, 0]], np.float32)


def test_multi_positive_softmax_oracle_and_gradient():
    z = np.random.default_rng(0).normal(0, 3, LABELS.shape)
    value, grad = _grad(lambda s: cb.multi_positive_softmax(s, LABELS), z)
    ref, ref_grad = softmax_oracle(z.astype(np.float32), LABELS)
    assert value == pytest.approx(ref, rel=1e-5)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-4, atol=1e-7)
    assert np.all(grad[1:3] == 0)  # no positive, all padding: nothing


def test_multi_positive_softmax_edge_cases():
    assert float(cb.multi_positive_softmax(tf.constant([[1.0, 2.0]]), [[0.0, 0.0]])) == 0.0
    assert float(cb.multi_positive_softmax(tf.constant([[7.0]]), [[1.0]])) == pytest.approx(0.0, abs=1e-7)
    value, grad = _grad(lambda s: cb.multi_positive_softmax(s, [[1.0, 0.0, -1.0]]), [[-1e4, 1e4, 1e30]])
    assert value == pytest.approx(2e4, rel=1e-6) and np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad, [[-1.0, 1.0, 0.0]], atol=1e-6)


def test_ranker_distillation_oracle_and_gradient():
    rng = np.random.default_rng(1)
    z = rng.normal(0, 2, (3, 4))
    q = np.where(rng.random((3, 4)) < 0.7, rng.random((3, 4)), -1.0).astype(np.float32)
    mask = np.array([[True, True, False, True]] * 3)
    value, grad = _grad(lambda s: cb.ranker_distillation(s, q, mask), z)
    ref, ref_grad = distill_oracle(z.astype(np.float32), q, mask)
    assert value == pytest.approx(ref, rel=1e-5)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-4, atol=1e-7)
    assert float(cb.ranker_distillation(tf.constant([[1.0]]), [[0.3]], [[False]])) == 0.0
    huge = cb.ranker_distillation(tf.constant([[1e4, -1e4]]), [[1.0, 0.0]], [[True, True]])
    assert float(huge) == pytest.approx(0.0, abs=1e-6)


# ----------------------------------------------------------------------------------------------- Keras classes


@pytest.mark.parametrize("name,cls,params,y_true", [
    ("copr_pairwise", COPRPairwise, {"chunk_size": 2}, RANKS[:2, :5]),
    ("rethink_listwise", RethinkListwise, {}, LABELS[:2]),
    ("ranker_distillation", RankerDistillation, {}, np.array([[0.2, -1, 0.9, 0.5, -1], [0.1] * 5], np.float32)),
])
def test_classes_registry_config_and_contract(name, cls, params, y_true):
    loss = losses.get(name, **params)
    assert isinstance(loss, cls) and name in losses.names()
    clone = cls.from_config(json.loads(json.dumps(loss.get_config())))
    assert clone.get_config() == loss.get_config()
    z = np.random.default_rng(5).normal(0, 1, y_true.shape).astype(np.float32)
    direct = float(loss(tf.constant(y_true), tf.constant(z)))
    assert float(clone(tf.constant(y_true), {"logit": tf.constant(z), "other": tf.zeros(1)})) == direct
    expected = {"copr_pairwise": lambda: cb.copr_pairwise(z, y_true, 2),
                "rethink_listwise": lambda: cb.multi_positive_softmax(z, y_true),
                "ranker_distillation": lambda: cb.ranker_distillation(z, y_true, y_true >= 0)}[name]()
    assert direct == pytest.approx(float(expected), rel=1e-6)
    with pytest.raises(ValueError, match="sample_weight"):
        loss(tf.constant(y_true), tf.constant(z), sample_weight=tf.ones([2]))
    with pytest.raises(ValueError, match="has no 'score'"):
        cls(score_key="score", **params)(tf.constant(y_true), {"logit": tf.constant(z)})


def test_class_argument_errors():
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="chunk_size"):
            COPRPairwise(chunk_size=bad)
    with pytest.raises(ValueError, match="score_key"):
        RethinkListwise(score_key="")


# ----------------------------------------------------------------------------------------------- on the model


def test_copr_variant_terms_and_the_relaxation_net_is_cut_from_the_towers():
    x, y = tiny_batch()
    model = ThreeTower(**SMALL, variant="copr", copr_chunk_size=2)
    with tf.GradientTape(persistent=True) as tape:
        out = model(x, training=True)
        _, terms = model.task_loss_terms(y, out)
    z = (out["logit_click"] + out["relaxation"]).numpy()
    ranks = np.where(y["example_mask"].numpy(), y["rank"].numpy(), -1)
    assert float(terms["copr_pairwise_click"]) == pytest.approx(copr_oracle(z, ranks, 2)[0], rel=1e-5)
    delta = out["relaxation"].numpy()
    assert float(terms["copr_reg_click"]) == pytest.approx((delta[ranks >= 1] ** 2).sum() / z.shape[0], rel=1e-5)
    towers = model.item_tower.trainable_variables + model.user_tower.trainable_variables
    assert all(g is None for g in tape.gradient(terms["copr_reg_click"], towers))
    relax = tape.gradient(terms["copr_reg_click"], model.relaxation.trainable_variables)
    assert all(g is not None for g in relax)
    assert any(g is not None for g in tape.gradient(terms["copr_pairwise_click"], towers))


def test_rethink_variant_terms_exposure_task_and_required_score(tmp_path):
    from tfrec.config import load_config
    from tfrec.train_preranking import build_preranking_model

    x, y = tiny_batch()
    model = ThreeTower(**SMALL, variant="rethink")
    assert model.all_tasks[0] == "exposure" and "user_exposure" in model(x)
    out = model(x, training=True)
    _, terms = model.task_loss_terms(y, out)
    st, mask = y["sample_type"].numpy(), y["example_mask"].numpy()
    listed = mask & np.isin(st, (1, 2, 3, 5))
    exposure = np.where(listed, (st == 1).astype(np.float32), -1.0)
    clicks = np.where(listed, np.where(st == 1, y["click"].numpy(), 0.0), -1.0)
    assert float(terms["rethink_list_exposure"]) == pytest.approx(
        softmax_oracle(out["logit_exposure"].numpy(), exposure)[0], rel=1e-5)
    assert float(terms["rethink_list_click"]) == pytest.approx(
        softmax_oracle(out["logit_click"].numpy(), clicks)[0], rel=1e-5)
    assert float(terms["rethink_distill_click"]) == pytest.approx(
        distill_oracle(out["logit_click"].numpy(), y["ranker_score"].numpy(), mask & (st == 1))[0], rel=1e-5)
    with pytest.raises(ValueError, match="exposure"):
        ThreeTower(**{**SMALL, "tasks": ("exposure", "click")}, variant="rethink")
    schema = ListwiseSchema("x", ("user_id",), (), (), ("item_id", "category"), ("price",), ("click", "purchase"))
    cfg = load_config(None, ["model.name=three_tower", "model.variant=rethink", "model.tasks=[click, purchase]",
                             "model.loss.task_weights=[1.0, 0.2]"])
    with pytest.raises(ValueError, match="ranker_score"):
        build_preranking_model(cfg, schema)


@pytest.mark.parametrize("name,make_y", [
    ("copr_pairwise", lambda rng: np.where(rng.random((8, 5)) < 0.8, rng.permutation(40).reshape(8, 5) % 7, -1)),
    ("rethink_listwise", lambda rng: np.where(rng.random((8, 5)) < 0.8, rng.integers(0, 2, (8, 5)), -1)),
    ("ranker_distillation", lambda rng: np.where(rng.random((8, 5)) < 0.8, rng.random((8, 5)), -1.0)),
])
def test_two_replicas_equal_one_device(name, make_y):
    import tf_keras as keras

    from tfrec.devices import make_strategy
    from tests.tfrec.losses.test_losses_listmle import FEATURES, K, ListScorer

    rng = np.random.default_rng(4)
    x = rng.normal(size=(8, K, FEATURES)).astype(np.float32)
    y = make_y(rng).astype(np.float32)
    y[6] = -1  # an all-padding list in the second replica's half
    init = None
    out = {}
    for replicas in (1, 2):
        strategy = make_strategy(replicas)
        with strategy.scope():
            model = ListScorer()
            model({"x": tf.constant(x[:1])})
            init = init or model.score.get_weights()
            model.score.set_weights(init)
            model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5), loss=losses.get(name))
        ds = tf.data.Dataset.from_tensors(({"x": tf.constant(x)}, tf.constant(y)))
        hist = model.fit(strategy.experimental_distribute_dataset(ds), epochs=1, steps_per_epoch=1, verbose=0)
        out[replicas] = (model.score.get_weights(), hist.history["loss"][0])
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(out[1][0], init)) > 1e-5
    # The 1-device loss is the loss of the batch; the replicas' gradients sum to its gradient.
    logits = (x @ init[0][:, 0] + init[1][0]).astype(np.float32)
    assert out[1][1] == pytest.approx(float(losses.get(name)(tf.constant(y), tf.constant(logits))), rel=1e-5)
    for a, b in zip(out[1][0], out[2][0]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
