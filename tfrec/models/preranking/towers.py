"""The three towers of HCCP's pre-ranking model (section 3.1.1; Three-Tower after Wang et al. [31]).

* :class:`UserTower`: context features (user id, user segment, scenario) and the user's click history (mean of
  its item and category embeddings) -> an MMoE (Ma et al., KDD 2018; 8 experts in HCCP 4.1.4) with one gate and
  one output head per task -> a user embedding per task ``[B, d]`` (the global consistency task is one of them:
  HCCP 4.4.3 attributes its extra parameters to "a global consistency task based on MMOE").
* :class:`ItemTower`: item id, category and price -> one item embedding ``[..., d]`` shared by the tasks (Eq. 5
  writes ``v_j^t = ||u^t|| ||i_j||``: the user side is per task, the item side is not). Item embeddings depend on
  item features only, so they can be precomputed (section 3.1.1: "pre-computed and updated in near real-time").
* :class:`CrossTower`: user-item cross features -> one cross score per task ``[B, L, T]``. The cross features
  (the paper names "the proportion of the item brand in the user click sequence" as an example): the share of the
  item's category in the user's click-history categories, whether the item itself is in the click history, and
  hashed scenario x category and user segment x category crosses, embedded.

Categorical values are hashed (``keras.layers.Hashing``) into ``hash_bins`` buckets per feature: the hybrid-sample
pipeline writes no vocabularies, and hashing keeps the model's preprocessing inside the SavedModel.
"""

from __future__ import annotations

from typing import Dict, Sequence

import tensorflow as tf
import tf_keras as keras

from tfrec.layers import MLP, Experts, Gate
from tfrec.layers.experts import mix

CONTEXT = ("user_id", "user_segment", "scenario")
HISTORY = ("click_history", "click_history_category")
ITEM = ("item_id", "category")


def dense_strings(x) -> tf.Tensor:
    """A ``tf.SparseTensor`` (or dense) string sequence ``[B, H]`` as a dense tensor with ``""`` padding."""
    if isinstance(x, tf.SparseTensor):
        return tf.sparse.to_dense(x, default_value="")
    return tf.convert_to_tensor(x)


class _Hashed(keras.layers.Layer):
    """Hashing + embedding of one string feature (any shape -> shape + [dim])."""

    def __init__(self, hash_bins: int, dim: int, l2: float, **kwargs):
        super().__init__(**kwargs)
        self.hash = keras.layers.Hashing(hash_bins)
        reg = keras.regularizers.l2(l2) if l2 > 0 else None
        self.embed = keras.layers.Embedding(hash_bins, dim, embeddings_regularizer=reg,
                                            embeddings_initializer=keras.initializers.RandomNormal(stddev=0.05))

    def call(self, x):
        return self.embed(self.hash(x))


@keras.saving.register_keras_serializable(package="tfrec")
class UserTower(keras.layers.Layer):
    """Context features -> MMoE -> ``{task: [B, dim]}`` user embeddings.

    Args:
      tasks: task names (one gate and one head each).
      hash_bins / embedding_dim / embedding_l2: of the hashed feature embeddings.
      num_experts / expert_units: the MMoE experts (HCCP: 8 experts).
      output_dim: size of the user (and item) embedding.
    """

    def __init__(self, tasks: Sequence[str], hash_bins: int, embedding_dim: int, embedding_l2: float,
                 num_experts: int, expert_units: Sequence[int], output_dim: int, **kwargs):
        super().__init__(**kwargs)
        self.tasks = [str(t) for t in tasks]
        self.hash_bins, self.embedding_dim, self.embedding_l2 = int(hash_bins), int(embedding_dim), float(embedding_l2)
        self.num_experts, self.expert_units, self.output_dim = int(num_experts), [int(u) for u in expert_units], int(output_dim)
        self.features = {f: _Hashed(self.hash_bins, self.embedding_dim, self.embedding_l2, name=f"embed_{f}")
                         for f in CONTEXT + HISTORY}
        self.experts = Experts(self.num_experts, self.expert_units, name="experts")
        self.gates = {t: Gate(self.num_experts, name=f"gate_{t}") for t in self.tasks}
        self.heads = {t: keras.layers.Dense(self.output_dim, name=f"user_{t}") for t in self.tasks}

    def call(self, context: Dict[str, tf.Tensor], training=None) -> Dict[str, tf.Tensor]:
        parts = [self.features[f](tf.reshape(context[f], [-1])) for f in CONTEXT]
        for f in HISTORY:
            seq = dense_strings(context[f])
            present = tf.cast(tf.not_equal(seq, ""), tf.float32)[:, :, None]
            emb = self.features[f](seq) * present
            parts.append(tf.math.divide_no_nan(tf.reduce_sum(emb, 1), tf.reduce_sum(present, 1)))
        x = tf.concat(parts, axis=1)
        experts = self.experts(x, training=training)
        return {t: self.heads[t](mix(self.gates[t](x), experts)) for t in self.tasks}

    def get_config(self):
        return {**super().get_config(), "tasks": self.tasks, "hash_bins": self.hash_bins,
                "embedding_dim": self.embedding_dim, "embedding_l2": self.embedding_l2,
                "num_experts": self.num_experts, "expert_units": self.expert_units, "output_dim": self.output_dim}


@keras.saving.register_keras_serializable(package="tfrec")
class ItemTower(keras.layers.Layer):
    """Item features (``item_id``, ``category`` strings; ``price`` float) of any shape ``S`` -> ``S + [output_dim]``.

    Args:
      hash_bins / embedding_dim / embedding_l2: of the hashed feature embeddings.
      hidden_units: the MLP before the output projection.
      output_dim: size of the item embedding.
    """

    def __init__(self, hash_bins: int, embedding_dim: int, embedding_l2: float, hidden_units: Sequence[int],
                 output_dim: int, **kwargs):
        super().__init__(**kwargs)
        self.hash_bins, self.embedding_dim, self.embedding_l2 = int(hash_bins), int(embedding_dim), float(embedding_l2)
        self.hidden_units, self.output_dim = [int(u) for u in hidden_units], int(output_dim)
        self.features = {f: _Hashed(self.hash_bins, self.embedding_dim, self.embedding_l2, name=f"embed_{f}")
                         for f in ITEM}
        self.mlp = MLP(self.hidden_units, name="mlp")
        self.out = keras.layers.Dense(self.output_dim, name="item_embedding")

    def call(self, items: Dict[str, tf.Tensor], training=None) -> tf.Tensor:
        price = tf.math.log1p(tf.maximum(tf.cast(items["price"], tf.float32), 0.0))[..., None]
        x = tf.concat([self.features[f](items[f]) for f in ITEM] + [price], axis=-1)
        return self.out(self.mlp(x, training=training))

    def get_config(self):
        return {**super().get_config(), "hash_bins": self.hash_bins, "embedding_dim": self.embedding_dim,
                "embedding_l2": self.embedding_l2, "hidden_units": self.hidden_units, "output_dim": self.output_dim}


@keras.saving.register_keras_serializable(package="tfrec")
class CrossTower(keras.layers.Layer):
    """User-item cross features ``[B, L]`` -> cross scores ``[B, L, num_tasks]`` (see the module docstring).

    Args:
      num_tasks: number of scores per item.
      hash_bins / embedding_dim / embedding_l2: of the hashed crosses.
      hidden_units: the MLP before the scores.
    """

    def __init__(self, num_tasks: int, hash_bins: int, embedding_dim: int, embedding_l2: float,
                 hidden_units: Sequence[int], **kwargs):
        super().__init__(**kwargs)
        self.num_tasks = int(num_tasks)
        self.hash_bins, self.embedding_dim, self.embedding_l2 = int(hash_bins), int(embedding_dim), float(embedding_l2)
        self.hidden_units = [int(u) for u in hidden_units]
        self.crosses = {f: _Hashed(self.hash_bins, self.embedding_dim, self.embedding_l2, name=f"embed_{f}")
                        for f in ("scenario_x_category", "segment_x_category")}
        self.mlp = MLP(self.hidden_units, name="mlp")
        self.out = keras.layers.Dense(self.num_tasks, name="cross_scores")

    @staticmethod
    def numeric_crosses(context: Dict[str, tf.Tensor], items: Dict[str, tf.Tensor]) -> tf.Tensor:
        """``[B, L, 2]``: share of the item's category in the click-history categories; item in the history."""
        cats = dense_strings(context["click_history_category"])  # [B, H]
        hist = dense_strings(context["click_history"])
        n = tf.reduce_sum(tf.cast(tf.not_equal(cats, ""), tf.float32), axis=1)[:, None]
        same_cat = tf.logical_and(tf.equal(items["category"][:, :, None], cats[:, None, :]),
                                  tf.not_equal(cats, "")[:, None, :])
        share = tf.math.divide_no_nan(tf.reduce_sum(tf.cast(same_cat, tf.float32), axis=2), n)
        seen = tf.reduce_any(tf.logical_and(tf.equal(items["item_id"][:, :, None], hist[:, None, :]),
                                            tf.not_equal(hist, "")[:, None, :]), axis=2)
        return tf.stack([share, tf.cast(seen, tf.float32)], axis=-1)

    def call(self, context: Dict[str, tf.Tensor], items: Dict[str, tf.Tensor], training=None) -> tf.Tensor:
        cat = items["category"]
        length = tf.shape(cat)[1]

        def tile(name):
            return tf.repeat(tf.reshape(context[name], [-1, 1]), length, axis=1)

        parts = [self.numeric_crosses(context, items),
                 self.crosses["scenario_x_category"](tf.strings.join([tile("scenario"), cat], "\x1f")),
                 self.crosses["segment_x_category"](tf.strings.join([tile("user_segment"), cat], "\x1f"))]
        return self.out(self.mlp(tf.concat(parts, axis=-1), training=training))

    def get_config(self):
        return {**super().get_config(), "num_tasks": self.num_tasks, "hash_bins": self.hash_bins,
                "embedding_dim": self.embedding_dim, "embedding_l2": self.embedding_l2,
                "hidden_units": self.hidden_units}
