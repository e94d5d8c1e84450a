"""Layers: the DCN V2 cross formula on hand-derivable values, MLP, feature preprocessing and embeddings."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tfrec.features import MISSING_TOKEN
from tfrec.layers import MLP, Cross, CrossNetwork, FeatureEmbedding
from tfrec.transforms import ScaleAccumulator, apply_numpy


def test_cross_full_rank_formula():
    layer = Cross()
    x0 = tf.constant([[1.0, 2.0], [3.0, -1.0]])
    layer(x0)
    w = np.array([[0.5, -1.0], [2.0, 0.25]], dtype=np.float32)
    b = np.array([0.1, -0.2], dtype=np.float32)
    layer.w.assign(w)
    layer.b.assign(b)
    xl = tf.constant([[0.5, 0.5], [1.0, 2.0]])
    got = layer(x0, xl).numpy()
    want = x0.numpy() * (xl.numpy() @ w.T + b) + xl.numpy()  # x0 * (W x_l + b) + x_l
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_cross_low_rank_and_network():
    layer = Cross(low_rank=1)
    x0 = tf.constant([[1.0, 2.0, 3.0]])
    layer(x0)
    layer.u.assign(np.ones((3, 1), np.float32))
    layer.v.assign(np.full((3, 1), 0.5, np.float32))
    layer.b.assign(np.zeros(3, np.float32))
    # U (V^T x) = 0.5 * 6 = 3 per coordinate -> x0 * 3 + x0 = 4 x0
    np.testing.assert_allclose(layer(x0).numpy(), 4 * x0.numpy(), rtol=1e-6)
    net = CrossNetwork(num_layers=2)
    out = net(tf.random.normal([4, 5]))
    assert out.shape == (4, 5) and len(net.trainable_variables) == 4
    with pytest.raises(ValueError, match="low_rank"):
        Cross(low_rank=-1)


def test_mlp_shapes_dropout_and_config():
    mlp = MLP([8, 4], dropout=0.5, batch_norm=True, kernel_l2=1e-3)
    x = tf.random.stateless_normal([16, 3], seed=[1, 2])
    assert mlp(x, training=False).shape == (16, 4)
    plain = MLP([8, 4], dropout=0.5)
    assert not np.allclose(plain(x, training=True).numpy(), plain(x, training=False).numpy())
    clone = MLP.from_config(mlp.get_config())
    assert clone.get_config() == mlp.get_config()
    assert len(mlp.losses) == 2  # one L2 term per kernel
    with pytest.raises(ValueError, match="hidden_units"):
        MLP([0])


def _feature_layer(**kw):
    vocab = {"C1": ["aa", "bb", MISSING_TOKEN], "C2": ["x"]}
    transform = {"kind": "log_minmax", "scale": {"I1": float(np.log1p(100.0)), "I2": 2.0}}
    return FeatureEmbedding(["I1", "I2"], ["C1", "C2"], vocab, transform, embedding_dim=3, **kw)


def test_feature_embedding_lookup_and_transform():
    layer = _feature_layer()
    feats = {"I1": tf.constant([100.0, np.nan, -3.0, 1e9]), "I2": tf.constant([1.0, 2.0, 3.0, 4.0]),
             "C1": tf.constant(["aa", "", "zz", "bb"]), "C2": tf.constant(["x", "x", "", "y"])}
    out = layer(feats)
    assert out.shape == (4, 4, 3)
    ids = layer.categorical_ids(feats).numpy()
    # C1: aa -> 1, "" -> missing token -> 3, unknown -> OOV 0, bb -> 2; C2 offset = 4 (3 tokens + OOV)
    np.testing.assert_array_equal(ids[:, 0], [1, 3, 0, 2])
    np.testing.assert_array_equal(ids[:, 1], [5, 5, 4, 4])  # "" has no missing token in C2 -> OOV
    values = layer.dense_values(feats).numpy()
    np.testing.assert_allclose(values[:, 0], apply_numpy("log_minmax", np.log1p(100.0), feats["I1"].numpy()),
                               rtol=1e-6)
    assert values[0, 0] == pytest.approx(1.0) and values[1, 0] == 0.0 and values[3, 0] == 1.0  # clipped
    # numeric embedding = value * field vector
    np.testing.assert_allclose(out.numpy()[:, 0, :], values[:, :1] * layer.dense_vectors.numpy()[0], rtol=1e-6)


def test_embedding_l2_is_fuxictrs_half_lambda_sum_of_squares():
    # FuxiCTR: (lambda / p) * ||W||_p^p with p = 2 over every embedding table, i.e. (lambda / 2) * sum(w^2);
    # its gradient is lambda * w.
    lam = 1e-2
    layer = _feature_layer(embedding_l2=lam)
    layer({"I1": tf.constant([1.0]), "I2": tf.constant([1.0]), "C1": tf.constant(["aa"]), "C2": tf.constant(["x"])})
    tables = [layer.table.numpy().astype(np.float64), layer.dense_vectors.numpy().astype(np.float64)]
    want = [lam / 2.0 * np.sum(t ** 2) for t in tables]
    assert len(layer.losses) == 2
    np.testing.assert_allclose(sorted(float(v) for v in layer.losses), sorted(want), rtol=1e-5)
    with tf.GradientTape() as tape:
        penalty = tf.add_n(layer.losses)
    grads = tape.gradient(penalty, [layer.table, layer.dense_vectors])
    for g, t in zip(grads, tables):
        np.testing.assert_allclose(g.numpy(), lam * t, rtol=1e-5, atol=1e-12)


def test_feature_embedding_config_round_trip_and_errors():
    layer = _feature_layer(embedding_l2=1e-5)
    clone = FeatureEmbedding.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    with pytest.raises(ValueError, match="no entry for categorical"):
        FeatureEmbedding(["I1"], ["C9"], {}, {"kind": "none", "scale": {}})
    with pytest.raises(ValueError, match="no scale for dense"):
        FeatureEmbedding(["I1"], [], {}, {"kind": "log_minmax", "scale": {}})


def test_scale_accumulator_fits_max_abs_and_merges():
    a = ScaleAccumulator("log_minmax", ["I1", "I2"])
    a.add({"I1": 10.0, "I2": float("nan")})
    b = ScaleAccumulator("log_minmax", ["I1", "I2"])
    b.add({"I1": -1000.0, "I2": 3.0})
    a.merge(b)
    p = a.params()
    assert p["scale"]["I1"] == pytest.approx(np.log1p(1000.0)) and p["scale"]["I2"] == pytest.approx(np.log1p(3))
    empty = ScaleAccumulator("minmax", ["I3"]).params()
    assert empty["scale"]["I3"] == 1.0  # never seen: no division by zero
    with pytest.raises(ValueError, match="kind"):
        ScaleAccumulator("zscore", ["I1"])
