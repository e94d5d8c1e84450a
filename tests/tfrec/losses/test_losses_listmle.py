"""ListMLE consistency (HCCP Eq. 3-4): NumPy oracle, Plackett-Luce gradient, ties, padding, HCCP's arranged order,
agreement with TF-Ranking's ListMLELoss where the semantics coincide, edge cases, the Keras class, and a 2-replica
step equal to the 1-device step."""

import math

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_ranking as tfr
import tf_keras as keras

from tfrec import losses
from tfrec.devices import make_strategy
from tfrec.losses.classes.preranking import ListMLE
from tfrec.losses.consistency import list_mle
from tfrec.models import RankingModel


def _order(ranks, valid):
    """Valid positions sorted by rank; ties keep their column order."""
    idx = np.flatnonzero(valid)
    return idx[np.argsort(np.asarray(ranks)[idx], kind="stable")]


def _oracle(scores, ranks, mask=None, weights=None):
    """Eq. 3 in float64: -1/|U| sum_u sum_j log(exp(y_j) / sum_{k>=j} exp(y_k)), |U| = number of rows."""
    scores = np.asarray(scores, np.float64)
    ranks = np.asarray(ranks)
    valid = ranks >= 0 if mask is None else (ranks >= 0) & np.asarray(mask)
    total = 0.0
    for b in range(scores.shape[0]):
        y = scores[b, _order(ranks[b], valid[b])]
        row = 0.0
        for j in range(len(y)):
            tail = y[j:]
            top = tail.max()
            row += top + np.log(np.exp(tail - top).sum()) - y[j]
        total += row * (1.0 if weights is None else weights[b])
    return total / scores.shape[0]


def _grad_oracle(scores, ranks):
    """Plackett-Luce: dL/dy_{pi(j)} = (1/|U|) (sum_{i<=j} exp(y_{pi(j)}) / sum_{k>=i} exp(y_{pi(k)}) - 1)."""
    scores = np.asarray(scores, np.float64)
    g = np.zeros_like(scores)
    for b in range(scores.shape[0]):
        order = _order(ranks[b], np.asarray(ranks[b]) >= 0)
        y = scores[b, order]
        for j in range(len(y)):
            p = sum(np.exp(y[j]) / np.exp(y[i:]).sum() for i in range(j + 1))
            g[b, order[j]] = (p - 1.0) / scores.shape[0]
    return g


def _random(B=6, K=8, seed=0, ties=True, pad=True):
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(B, K)) * 2.0
    if ties:
        ranks = rng.integers(0, 4, size=(B, K))
    else:
        ranks = np.stack([rng.permutation(K) for _ in range(B)]) * 3 + 1
    if pad:
        ranks[rng.random((B, K)) < 0.25] = -1
    return scores, ranks


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_numpy_oracle(seed):
    scores, ranks = _random(seed=seed)
    got = float(list_mle(tf.constant(scores, tf.float32), tf.constant(ranks)))
    assert got == pytest.approx(_oracle(scores, ranks), rel=1e-5)
    # float ranks and int ranks give the same order
    assert float(list_mle(tf.constant(scores, tf.float32), tf.constant(ranks, tf.float32))) == pytest.approx(got)


def test_mask_argument_and_padding_are_excluded_from_items_and_denominators():
    scores, ranks = _random(B=4, K=7, seed=3, pad=False)
    mask = np.ones_like(ranks, bool)
    mask[:, 5:] = False
    got = float(list_mle(tf.constant(scores), tf.constant(ranks), tf.constant(mask)))
    assert got == pytest.approx(_oracle(scores, ranks, mask), rel=1e-9)
    # The same as the narrower batch without the padded columns, whatever their scores.
    narrow = float(list_mle(tf.constant(scores[:, :5]), tf.constant(ranks[:, :5])))
    assert got == pytest.approx(narrow, rel=1e-12)
    padded_ranks = np.where(mask, ranks, -1)
    wild = np.where(mask, scores, 1e4)
    assert float(list_mle(tf.constant(wild), tf.constant(padded_ranks))) == pytest.approx(narrow, rel=1e-12)


def test_ties_are_broken_by_position():
    a, b = 0.4, -1.1
    # Equal ranks: the earlier column is first in the order, so the loss is -log(e^a / (e^a + e^b)).
    got = float(list_mle(tf.constant([[a, b]], tf.float64), tf.constant([[3, 3]])))
    assert got == pytest.approx(np.log(np.exp(a) + np.exp(b)) - a, rel=1e-12)
    swapped = float(list_mle(tf.constant([[b, a]], tf.float64), tf.constant([[3, 3]])))
    assert swapped == pytest.approx(np.log(np.exp(a) + np.exp(b)) - b, rel=1e-12)
    # Deterministic: the same value every call (TF-Ranking's shuffles ties; see the comparison test below).
    assert len({float(list_mle(tf.constant([[a, b, 0.3]]), tf.constant([[1, 1, 1]]))) for _ in range(5)}) == 1


def test_hccp_arranged_order_clicked_then_impressions_then_unexposed():
    # r^c = r - (e + l_clk) * N^r (Sec. 3.2.1), stored shifted by 2 N^r so that it is >= 1 (negative = padding).
    n_r = 10
    r = np.array([1, 2, 3, 4, 5, 6, 7, 8])
    e = np.array([0, 1, 0, 1, 1, 0, 1, 0])
    clk = np.array([0, 0, 0, 1, 0, 0, 1, 0])
    rc = r - (e + clk) * n_r
    stored = rc + 2 * n_r
    assert rc.min() < 0 and stored.min() >= 1
    scores = np.random.default_rng(4).normal(size=(1, 8))
    # Expected order: clicked (r = 4, 7), unclicked impressions (r = 2, 5), unexposed (r = 1, 3, 6, 8).
    expected = [3, 6, 1, 4, 0, 2, 5, 7]
    y = scores[0, expected]
    want = sum(np.log(np.exp(y[j:]).sum()) - y[j] for j in range(8))
    got = float(list_mle(tf.constant(scores), tf.constant(stored[None])))
    assert got == pytest.approx(want, rel=1e-12)
    # Local consistency (Eq. 4) on the exposure sequence R^t: unexposed items are padding.
    local = np.where(e == 1, stored, -1)
    y_t = scores[0, [3, 6, 1, 4]]
    want_t = sum(np.log(np.exp(y_t[j:]).sum()) - y_t[j] for j in range(4))
    assert float(list_mle(tf.constant(scores), tf.constant(local[None]))) == pytest.approx(want_t, rel=1e-12)


def test_analytic_and_numeric_gradient():
    scores, ranks = _random(B=3, K=6, seed=5)
    z = tf.Variable(scores)
    with tf.GradientTape() as tape:
        loss = list_mle(z, tf.constant(ranks))
    g = tape.gradient(loss, z).numpy()
    np.testing.assert_allclose(g, _grad_oracle(scores, ranks), atol=1e-12)
    assert np.all(g[ranks < 0] == 0.0)  # padding gets no gradient
    theoretical, numerical = tf.test.compute_gradient(lambda s: list_mle(s, tf.constant(ranks)),
                                                      [tf.constant(scores)])
    np.testing.assert_allclose(theoretical[0], numerical[0], atol=1e-6)


def test_agrees_with_tf_ranking_list_mle_on_tie_free_inputs():
    """TF-Ranking's ListMLELoss takes relevance labels (higher first) and shuffles ties; on tie-free ranks
    ``labels = max_rank - rank`` gives the same order, and its default reduction (sum over lists / number of lists)
    is Eq. 3's 1/|U|. With padding it differs by the constant log(n_pad!) per list (its padded tail stays in the
    list with logit log(1e-10)), which is subtracted here."""
    scores, ranks = _random(B=5, K=7, seed=6, ties=False, pad=False)
    ours = float(list_mle(tf.constant(scores, tf.float32), tf.constant(ranks)))
    labels = (ranks.max() - ranks).astype(np.float32)
    theirs = float(tfr.keras.losses.ListMLELoss()(tf.constant(labels), tf.constant(scores, tf.float32)))
    assert ours == pytest.approx(theirs, rel=1e-5)
    assert ours == pytest.approx(_oracle(scores, ranks), rel=1e-5)
    summed = tfr.keras.losses.ListMLELoss(reduction=tf.keras.losses.Reduction.SUM)
    assert float(summed(tf.constant(labels), tf.constant(scores, tf.float32))) == pytest.approx(5 * ours, rel=1e-5)

    # Padding: TF-Ranking adds log(n_pad!) per list (and n_pad * 1e-10 inside each denominator, negligible here).
    _, padded = _random(B=5, K=7, seed=7, ties=False, pad=True)
    labels = np.where(padded >= 0, padded.max() - padded, -1).astype(np.float32)
    theirs = float(tfr.keras.losses.ListMLELoss()(tf.constant(labels), tf.constant(scores, tf.float32)))
    constant = np.mean([math.lgamma((row < 0).sum() + 1) for row in padded])
    assert constant > 0.1
    ours = float(list_mle(tf.constant(scores, tf.float32), tf.constant(padded)))
    assert ours == pytest.approx(theirs - constant, rel=1e-5)
    assert ours == pytest.approx(_oracle(scores, padded), rel=1e-5)

    # Ties: TF-Ranking's value depends on the random seed, ours does not.
    tie_scores = tf.constant([[0.5, -1.0, 2.0]])
    tie_labels = tf.constant([[1.0, 1.0, 1.0]])
    seen = set()
    for seed in range(12):
        tf.random.set_seed(seed)
        seen.add(round(float(tfr.keras.losses.ListMLELoss()(tie_labels, tie_scores)), 5))
    assert len(seen) > 1


def test_edge_cases():
    # One valid item, or one item per list: 0.
    assert float(list_mle(tf.constant([[1.3]]), tf.constant([[0]]))) == 0.0
    assert float(list_mle(tf.constant([[1.3, 2.0, -1.0]]), tf.constant([[-1, 5, -1]]))) == 0.0
    # An all-padding list counts in |U| and contributes 0 (no NaN in the value or the gradient).
    scores = tf.Variable([[0.2, -0.3, 1.0], [5.0, 6.0, 7.0]])
    ranks = tf.constant([[2, 0, 1], [-1, -1, -1]])
    with tf.GradientTape() as tape:
        loss = list_mle(scores, ranks)
    g = tape.gradient(loss, scores).numpy()
    assert float(loss) == pytest.approx(_oracle(scores.numpy(), ranks.numpy()), rel=1e-6)
    assert float(loss) == pytest.approx(_oracle(scores.numpy()[:1], ranks.numpy()[:1]) / 2, rel=1e-6)
    assert np.all(np.isfinite(g)) and np.all(g[1] == 0.0)
    # All padding: 0 and a zero gradient.
    with tf.GradientTape() as tape:
        loss = list_mle(scores, -tf.ones([2, 3], tf.int32))
    assert float(loss) == 0.0 and np.all(tape.gradient(loss, scores).numpy() == 0.0)
    # No lists at all: 0, not NaN.
    assert float(list_mle(tf.zeros([0, 3]), tf.zeros([0, 3], tf.int32))) == 0.0
    # Huge logits: finite, exact (order -1e4, 0, 1e4: 2e4 + 1e4 + 0), finite gradient.
    huge = tf.Variable([[1e4, -1e4, 0.0]])
    with tf.GradientTape() as tape:
        loss = list_mle(huge, tf.constant([[2, 0, 1]]))
    assert float(loss) == pytest.approx(3e4, rel=1e-6)
    # The gradient sum_j (softmax of the items from position j on - onehot(item j)): every softmax puts all its
    # mass on the 1e4 item, last in the order, so it gets +1 twice, the other two -1 each.
    g = tape.gradient(loss, huge).numpy()
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g, [[2.0, -1.0, -1.0]], rtol=1e-4)  # float32 at |z| = 1e4


def test_keras_class_contract_round_trip_and_registry():
    scores, ranks = _random(B=4, K=5, seed=8)
    s = tf.constant(scores, tf.float32)
    want = _oracle(scores, ranks)
    loss = losses.get("list_mle")
    assert isinstance(loss, ListMLE) and "list_mle" in losses.names()
    assert float(loss(tf.constant(ranks), s)) == pytest.approx(want, rel=1e-5)
    assert float(loss(tf.constant(ranks), {"logit": s, "probability": tf.sigmoid(s)})) == pytest.approx(want, rel=1e-5)
    keyed = losses.get("list_mle", score_key="global_score")
    assert float(keyed(tf.constant(ranks), {"global_score": s, "logit": s * 0})) == pytest.approx(want, rel=1e-5)
    # per-request weights multiply each list's loss; still divided by |U|
    w = np.array([1.0, 0.5, 2.0, 0.0])
    assert float(loss(tf.constant(ranks), s, tf.constant(w))) == pytest.approx(_oracle(scores, ranks, weights=w),
                                                                               rel=1e-5)
    clone = keras.losses.deserialize(keras.losses.serialize(keyed))
    assert type(clone) is ListMLE and clone.get_config() == keyed.get_config()
    assert float(tf.function(lambda r, x: loss(r, x))(tf.constant(ranks), s)) == pytest.approx(want, rel=1e-5)
    with pytest.raises(ValueError, match="no 'logit'"):
        loss(tf.constant(ranks), {"score": s})
    with pytest.raises(ValueError, match=r"\[batch, list_size\]"):
        loss(tf.constant(ranks.reshape(-1)), tf.reshape(s, [-1]))
    with pytest.raises(ValueError, match="one weight per request"):
        loss(tf.constant(ranks), s, tf.ones([4, 5]))
    with pytest.raises(ValueError, match="no argument 'pairing'"):
        losses.get("list_mle", pairing="global")


# -- a 2-replica step equals the 1-device step (per-row loss, divided by the replica's number of lists) ---------------

FEATURES, K = 3, 5


class ListScorer(RankingModel):
    """A linear score per item of a [B, K, F] feature tensor."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.score = keras.layers.Dense(1, kernel_initializer=keras.initializers.GlorotUniform(seed=3), name="score")

    def input_signature(self):
        return {"x": tf.TensorSpec([None, K, FEATURES], tf.float32)}

    def call(self, inputs, training=False):
        logit = tf.squeeze(self.score(inputs["x"]), -1)
        return {"logit": logit, "probability": tf.sigmoid(logit)}

    def compute_metrics(self, x, y, y_pred, sample_weight):
        # RankingModel's default metrics read point-wise [batch] labels; y here is the [B, K] rank tensor.
        return {m.name: m.result() for m in self.metrics if m.name.endswith("loss")}


def test_two_replicas_equal_one_device():
    rng = np.random.default_rng(9)
    x = rng.normal(size=(8, K, FEATURES)).astype(np.float32)
    ranks = rng.integers(0, 6, size=(8, K)).astype(np.int32)
    ranks[rng.random((8, K)) < 0.3] = -1
    ranks[6] = -1  # an all-padding list in the second replica's half
    probe = ListScorer()
    probe({"x": tf.constant(x[:1])})
    init = probe.score.get_weights()
    out = {}
    for replicas in (1, 2):
        strategy = make_strategy(replicas)
        with strategy.scope():
            model = ListScorer()
            model({"x": tf.constant(x[:1])})
            model.score.set_weights(init)
            model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5), loss=losses.get("list_mle"))
        ds = tf.data.Dataset.from_tensors(({"x": tf.constant(x)}, tf.constant(ranks)))
        hist = model.fit(strategy.experimental_distribute_dataset(ds), epochs=1, steps_per_epoch=1, verbose=0)
        out[replicas] = (model.score.get_weights(), hist.history["loss"][0])
    assert out[1][1] == pytest.approx(_oracle(x @ init[0][:, 0] + init[1][0], ranks), rel=1e-5)
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(out[1][0], init)) > 1e-4
    for a, b in zip(out[1][0], out[2][0]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
