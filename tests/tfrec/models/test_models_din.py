"""DIN (tfrec.models.din): padded history slots change nothing, the pooling is the unnormalised weighted sum of
Eq. 3, Dice against NumPy, config / .keras / scorer SavedModel round trips, and a fit on data whose clicks depend on
the history that beats the same model without the history."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tfrec.config_taobao import DinConfig
from tfrec.data_taobao import CONTEXT_FEATURES, ITEM_FEATURES
from tfrec.metrics.classification import auc
from tfrec.models.din import DIN, Dice
from tfrec.train_din import export_scorer, load_scorer

SMALL = dict(hash_bins=97, embedding_dim=4, attention_units=(6,), hidden_units=(8, 4))


def batch(histories, brands=None, n=None):
    n = n or len(histories)
    x = {f: tf.constant([f"{f}{i % 3}" for i in range(n)]) for f in CONTEXT_FEATURES + ITEM_FEATURES}
    x["category"] = tf.constant(["c1", "c2", "c3"][:n] + ["c1"] * max(0, n - 3))
    x["price"] = tf.constant(np.linspace(1, 50, n), tf.float32)
    x["click_history_category"] = tf.constant(histories)
    x["click_history_brand"] = tf.constant(brands if brands is not None else
                                           [[f"b{c}" if c else "" for c in row] for row in histories])
    return x


def test_padded_history_slots_change_nothing():
    model = DIN(**SMALL)
    short = batch([["c1", "c2"], ["c3", "c1"], ["c2", ""]])
    padded = batch([["c1", "c2", "", ""], ["c3", "c1", "", ""], ["c2", "", "", ""]],
                   brands=[["bc1", "bc2", "junk", "x"], ["bc3", "bc1", "", "y"], ["bc2", "z", "", ""]])
    a = model(short, training=False)["logit"].numpy()
    b = model(padded, training=False)["logit"].numpy()
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    weights = model.attention_weights(padded).numpy()
    assert np.all(weights[:, 2:] == 0) and weights[2, 1] == 0 and np.all(weights[:2, :2] != 0)
    # ... and a real entry does change the output (the history is read)
    other = model(batch([["c3", "c3"], ["c3", "c1"], ["c2", ""]]), training=False)["logit"].numpy()
    assert abs(other[0] - a[0]) > 1e-6


def test_pooling_is_the_unnormalised_weighted_sum():
    model = DIN(**SMALL)
    x = batch([["c1", "c2", "c3"], ["c1", "", ""]])
    e, mask = model.behaviours(x)
    w = model.attention_weights(x).numpy()
    pooled, _ = model.attention(e, model.candidate_key(x), mask, training=False)
    np.testing.assert_allclose(pooled.numpy(), np.einsum("bh,bhk->bk", w, e.numpy()), rtol=1e-5, atol=1e-6)
    assert abs(w[0].sum() - 1.0) > 1e-3  # no softmax: the weights are the activation unit's raw outputs


def test_dice_against_numpy():
    dice = Dice()
    x = np.random.default_rng(0).normal(1.0, 2.0, (64, 3)).astype(np.float32)
    dice(x)
    dice.alpha.assign([0.5, -0.25, 1.0])
    alpha = dice.alpha.numpy()
    mean, var = x.mean(0), x.var(0)
    p = 1.0 / (1.0 + np.exp(-(x - mean) / np.sqrt(var + 1e-8)))
    np.testing.assert_allclose(dice(x, training=True).numpy(), p * x + (1 - p) * alpha * x, rtol=1e-4, atol=1e-5)
    p0 = 1.0 / (1.0 + np.exp(-x / np.sqrt(1.0 + 1e-8)))  # inference: the moving statistics (0, 1) here
    fresh = Dice()
    fresh(x)
    fresh.alpha.assign(alpha)
    np.testing.assert_allclose(fresh(x, training=False).numpy(), p0 * x + (1 - p0) * alpha * x, rtol=1e-4,
                               atol=1e-5)


def test_config_and_argument_checks():
    model = DIN(**SMALL, activation="prelu", embedding_l2=1e-3, use_history=False, exclude=["user_id"])
    assert DIN.from_config(model.get_config()).get_config() == model.get_config()
    assert "user_id" not in model.embeddings and "item_id" in model.embeddings
    a = model(batch([["c1"], ["c2"]]), training=False)["logit"].numpy()
    other = {**batch([["c1"], ["c2"]]), "user_id": tf.constant(["someone", "else"])}
    np.testing.assert_array_equal(model(other, training=False)["logit"].numpy(), a)  # an excluded input is ignored
    with pytest.raises(ValueError, match="activation"):
        DIN(activation="relu")
    for bad in (["category"], ["nope"]):
        with pytest.raises(ValueError, match="exclude"):
            DIN(exclude=bad)
    with pytest.raises(ValueError, match="embedding_l2"):
        DIN(embedding_l2=-1.0)


def test_save_load_and_scorer_round_trip(tmp_path):
    model = DIN(**SMALL, embedding_l2=1e-4)
    model(model.dummy_inputs())
    model.compile(optimizer="adam", loss=None)
    x = batch([["c1", "c2", ""], ["c3", "", ""], ["c2", "c2", "c1"]])
    before = model(x, training=False)["probability"].numpy()
    path = str(tmp_path / "din.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded(x, training=False)["probability"].numpy(), before, rtol=1e-6)
    scorer = load_scorer(export_scorer(model, str(tmp_path / "scorer")))
    np.testing.assert_allclose(scorer(**x)["probability"].numpy(), before, rtol=1e-6)


def synthetic(n, seed):
    """Requests whose click depends on whether the candidate's category is in the user's recent behaviour: the
    other features take a few values independent of the click (nothing else to learn), the interests are drawn
    per request, and the candidate is from them half of the time."""
    rng = np.random.default_rng(seed)
    cats = np.array([f"c{i}" for i in range(12)])
    x = {f: np.array([f"{f}{v}" for v in rng.integers(0, 5, n)]) for f in CONTEXT_FEATURES + ITEM_FEATURES}
    hist = np.empty((n, 6), object)
    cand = np.empty(n, object)
    for i in range(n):
        interest = rng.choice(12, 2, replace=False)
        hist[i] = cats[rng.choice(interest, 6)]
        hist[i, rng.integers(3, 7):] = ""
        cand[i] = cats[rng.choice(interest)] if rng.random() < 0.5 else cats[rng.integers(12)]
    x["category"], x["brand"] = cand, np.array(["b"] * n)
    x["price"] = rng.uniform(1, 100, n).astype(np.float32)
    x["click_history_category"] = hist
    x["click_history_brand"] = np.where(hist == "", "", "b").astype(object)
    in_hist = np.array([cand[i] in set(hist[i]) for i in range(n)])
    y = (rng.random(n) < 1 / (1 + np.exp(-(-2.0 + 3.0 * in_hist)))).astype(np.float32)
    return x, y


@pytest.mark.parametrize("activation", ["dice", "prelu"])
def test_fit_beats_the_same_model_without_history(activation):
    train_x, train_y = synthetic(6000, 1)
    test_x, test_y = synthetic(2000, 2)
    result = {}
    for use_history in (True, False):
        keras.utils.set_random_seed(7)
        model = DIN(hash_bins=2000, embedding_dim=6, attention_units=(16,), hidden_units=(32, 16),
                    activation=activation, use_history=use_history)
        model(model.dummy_inputs())
        from tfrec import losses

        model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=losses.get("weighted_bce"))
        ds = tf.data.Dataset.from_tensor_slices(({k: tf.constant(v) for k, v in train_x.items()}, train_y))
        model.fit(ds.shuffle(6000, seed=1).batch(64), epochs=5, verbose=0)
        p = model.predict({k: tf.constant(v) for k, v in test_x.items()}, batch_size=1000, verbose=0)
        result[use_history] = auc(test_y, p["probability"])
    assert result[True] > result[False] + 0.1, result
    assert result[True] > 0.7, result
