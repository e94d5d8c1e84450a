"""Small models and batches that exercise every registered loss through ``model.fit`` (test support).

``PointProbe`` is a linear point-wise scorer with every output a KDD / PWiseR loss reads (``logit``, ``logits``
for JRC, ``embedding``); ``SPECS`` maps each loss name to the arguments and the batch it is tested with.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfrec.models import RankingModel

FEATURES = 8


class PointProbe(RankingModel):
    """A linear model over ``x`` [batch, 8]: ``logit``, ``probability``, ``logits`` [batch, 2], ``embedding``."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.score = keras.layers.Dense(1, kernel_initializer="glorot_uniform", name="score")
        self.two = keras.layers.Dense(2, name="two")
        self.proj = keras.layers.Dense(4, name="proj")

    def input_signature(self):
        return {"x": tf.TensorSpec([None, FEATURES], tf.float32)}

    def call(self, inputs, training=False):
        x = inputs["x"]
        logit = tf.squeeze(self.score(x), -1)
        logits = self.two(x)
        return {"logit": logit, "probability": tf.sigmoid(logit), "logits": logits, "embedding": self.proj(x)}

    def compute_metrics(self, x, y, y_pred, sample_weight):
        # The default metrics read [batch] labels; PWiseR's are [batch, 2]. The loss trackers are what we need.
        return {m.name: m.result() for m in self.metrics if m.name.endswith("loss")}


def point_batch(n: int = 64, seed: int = 0, positive_rate: float = 0.25, beta_pos: float = 0.5):
    """``(x, y, w)`` with the dataset conventions: y in {0, 1}, w = beta_pos on positives, 1 on negatives."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, FEATURES)).astype(np.float32)
    y = (rng.random(n) < positive_rate).astype(np.float32)
    y[:2] = [1.0, 0.0]  # both classes present
    w = np.where(y == 1, beta_pos, 1.0).astype(np.float32)
    return {"x": x}, y, w


def funnel_batch(n: int = 64, seed: int = 0):
    """``(x, y, w)`` with y [batch, 2] = (click, conversion): conversions are a subset of clicks."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, FEATURES)).astype(np.float32)
    click = (rng.random(n) < 0.4).astype(np.float32)
    conv = click * (rng.random(n) < 0.5).astype(np.float32)
    click[:3], conv[:3] = [1, 1, 0], [1, 0, 0]  # one of each kind
    return {"x": x}, np.stack([click, conv], axis=1), np.ones(n, np.float32)


# loss name -> (arguments, batch maker); every registered KDD / PWiseR loss must be listed here.
SPECS = {
    "weighted_bce": ({}, point_batch),
    "focal": ({"gamma": 2.0}, point_batch),
    "normalized_focal": ({"gamma": 2.0}, point_batch),
    "rank_net": ({}, point_batch),
    "combined_pair": ({"alpha": 0.5}, point_batch),
    "list_net": ({}, point_batch),
    "combined_list": ({"alpha": 0.5}, point_batch),
    "list_ce": ({}, point_batch),
    "rcr": ({"alpha": 0.5}, point_batch),
    "jrc": ({"alpha": 0.5}, point_batch),
    "supervised_contrastive": ({"temperature": 0.4}, point_batch),
    "combined_contrastive": ({"alpha": 0.9, "temperature": 0.4}, point_batch),
    "pwiser": ({"task": "click", "lam": 0.5}, funnel_batch),
}
