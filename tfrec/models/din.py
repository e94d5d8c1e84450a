r"""Deep Interest Network (Zhou et al., KDD 2018, "Deep Interest Network for Click-Through Rate Prediction"): the
ranking model of the Taobao protocol (HCCP 4.1.1: "We utilize DIN as the ranking model").

Inputs (``tfrec.data_taobao``): the user and context ``C`` (``user_id``, ``user_segment``, ``scenario``, the 8
profile fields; strings ``[B]``), the candidate ad ``a`` (``item_id``, ``category``, ``brand``, ``campaign_id``,
``customer``; strings ``[B]``; ``price`` float ``[B]``) and the behaviour sequence (``click_history_category``,
``click_history_brand``; strings ``[B, H]``, oldest first, ``""`` padding). Every string is hashed
(``keras.layers.Hashing``) and embedded (dimension ``d``), so the model owns its preprocessing; the category and
brand tables are shared by the candidate and the behaviours (the paper shares the goods / shop / category
embeddings of candidate and history).

```
e_j = [E_cat(c_j), E_brand(b_j)],  v_a = [E_cat(c_a), E_brand(b_a)]                (2d each)
w_j = a(e_j, v_a) = Linear(act(W [e_j, v_a, e_j - v_a, e_j * v_a] + b))          (activation unit, Fig. 2)
v_U(a) = sum_{j : c_j != ""} w_j e_j                                               (Eq. 3, no softmax)
logit = MLP_{200-80}([E(C), v_U(a), E(a), log1p(price)]) -> Linear(1);  L = BCE
```

Readings and choices:

* Eq. 3 weights the behaviours by the raw activation-unit outputs: "normalization with softmax on the output of
  a(.) is abandoned" (section 4.3), to keep the intensity of the user's interests. Padding (``category == ""``)
  gets weight 0, so padded slots change nothing.
* The activation unit's input is ``[e_j, v_a, e_j - v_a, e_j * v_a]`` (the element-wise difference and product of
  the authors' released code stand for Fig. 2's "out product"); its hidden layer has 36 units (Fig. 2).
* Activation: Dice (Eq. 9-10) by default, ``f(s) = p(s) s + (1 - p(s)) alpha s`` with
  ``p(s) = sigmoid((s - E[s]) / sqrt(Var[s] + eps))``, ``E`` and ``Var`` the mini-batch statistics in training
  and their moving averages in inference (a ``BatchNormalization`` without scale and centre, ``eps = 1e-8``),
  ``alpha`` learned per unit; ``prelu`` gives PReLU (Eq. 8). The same activation runs in the activation unit and
  in the MLP.
* The behaviour key is (category, brand): the public log's ``behavior_log`` has no ad id, so the same key serves
  the behaviour-log history and the click history. Mini-batch aware regularisation (section 4.2) is not used
  (the quick runs are small; add ``embedding_l2`` if needed).
"""

from __future__ import annotations

from typing import Dict, Sequence

import tensorflow as tf
import tf_keras as keras

from tfrec.data_taobao import CONTEXT_FEATURES, ITEM_FEATURES
from tfrec.models.base import RankingModel

HISTORY = ("click_history_category", "click_history_brand")
_KEYS = ("category", "brand")


@keras.saving.register_keras_serializable(package="tfrec")
class Dice(keras.layers.Layer):
    """DIN's data-adaptive activation (Eq. 9-10): ``p(s) s + (1 - p(s)) alpha s`` (module docstring)."""

    def __init__(self, epsilon: float = 1e-8, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)
        self.norm = keras.layers.BatchNormalization(center=False, scale=False, epsilon=self.epsilon, name="norm")

    def build(self, input_shape):
        self.alpha = self.add_weight(name="alpha", shape=(int(input_shape[-1]),), initializer="zeros")
        super().build(input_shape)

    def call(self, x, training=None):
        p = tf.sigmoid(self.norm(x, training=training))
        return p * x + (1.0 - p) * self.alpha * x

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


def _activation(kind: str, name: str) -> keras.layers.Layer:
    return Dice(name=name) if kind == "dice" else keras.layers.PReLU(name=name)


@keras.saving.register_keras_serializable(package="tfrec")
class AttentionPooling(keras.layers.Layer):
    """DIN's local activation unit and weighted sum pooling (Eq. 3, no softmax).

    Call args: ``history`` ``[B, H, k]``, ``candidate`` ``[B, k]``, ``mask`` ``[B, H]`` bool (False = padding).
    Returns ``(pooled [B, k], weights [B, H])``; padded slots have weight 0.

    Args:
      units: hidden sizes of the activation unit.
      activation: ``dice`` or ``prelu``.
    """

    def __init__(self, units: Sequence[int] = (36,), activation: str = "dice", **kwargs):
        super().__init__(**kwargs)
        self.units, self.activation = [int(u) for u in units], str(activation)
        self.hidden = [keras.layers.Dense(u, name=f"dense_{i}") for i, u in enumerate(self.units)]
        self.acts = [_activation(self.activation, f"act_{i}") for i in range(len(self.units))]
        self.out = keras.layers.Dense(1, name="weight")

    def call(self, history, candidate, mask, training=None):
        query = tf.broadcast_to(candidate[:, None, :], tf.shape(history))
        x = tf.concat([history, query, history - query, history * query], axis=-1)
        for dense, act in zip(self.hidden, self.acts):
            x = act(dense(x), training=training)
        weights = tf.where(mask, tf.squeeze(self.out(x), -1), tf.zeros([], history.dtype))
        return tf.einsum("bh,bhk->bk", weights, history), weights

    def get_config(self):
        return {**super().get_config(), "units": self.units, "activation": self.activation}


@keras.saving.register_keras_serializable(package="tfrec")
class DIN(RankingModel):
    """Deep Interest Network (module docstring). Outputs ``{"logit": [B], "probability": [B]}``.

    Args:
      hash_bins / embedding_dim: hashed embeddings of every string feature.
      attention_units / hidden_units: the activation unit and the MLP (paper: 36; 200-80).
      activation: ``dice`` or ``prelu``.
      use_history: False drops the behaviour sequence (the same model without ``v_U``).
      embedding_l2: L2 weight on the embedding rows a batch uses (the mean over the batch of their squared norms;
        in the spirit of the paper's mini-batch aware regularisation, Eq. 5-6, which also touches only the rows
        that occur in the batch).
      exclude: context or ad features the model does not read (still inputs, ignored): on small data the
        high-cardinality ids (``user_id``, ``item_id``, ``campaign_id``, ``customer``) mostly memorise.
        ``category`` and ``brand`` are the attention key and cannot be excluded.
    """

    def __init__(self, hash_bins: int = 50_000, embedding_dim: int = 12, attention_units: Sequence[int] = (36,),
                 hidden_units: Sequence[int] = (200, 80), activation: str = "dice", use_history: bool = True,
                 embedding_l2: float = 0.0, exclude: Sequence[str] = (), **kwargs):
        super().__init__(**kwargs)
        if activation not in ("dice", "prelu"):
            raise ValueError(f"`activation` must be dice or prelu. Received: activation={activation!r}")
        if int(hash_bins) <= 0 or int(embedding_dim) <= 0:
            raise ValueError(f"`hash_bins` and `embedding_dim` must be > 0. Received: hash_bins={hash_bins}, "
                             f"embedding_dim={embedding_dim}")
        self.hash_bins, self.embedding_dim = int(hash_bins), int(embedding_dim)
        self.attention_units, self.hidden_units = [int(u) for u in attention_units], [int(u) for u in hidden_units]
        self.activation, self.use_history = str(activation), bool(use_history)
        self.embedding_l2 = float(embedding_l2)
        self.exclude = [str(f) for f in exclude]
        unknown = sorted(set(self.exclude) - set(CONTEXT_FEATURES + ITEM_FEATURES) | set(self.exclude) & set(_KEYS))
        if unknown:
            raise ValueError(f"`exclude` must name context or ad features other than {list(_KEYS)}. Received: "
                             f"exclude={self.exclude}")
        self.features = [f for f in CONTEXT_FEATURES + ITEM_FEATURES if f not in self.exclude]
        if not self.embedding_l2 >= 0:
            raise ValueError(f"`embedding_l2` must be >= 0. Received: embedding_l2={embedding_l2}")
        self.hashing = keras.layers.Hashing(self.hash_bins, name="hashing")
        self.embeddings = {f: keras.layers.Embedding(self.hash_bins, self.embedding_dim, name=f"embed_{f}",
                                                     embeddings_initializer=keras.initializers.RandomNormal(stddev=0.05))
                           for f in self.features}
        self.attention = AttentionPooling(self.attention_units, self.activation, name="attention")
        self.dense = [keras.layers.Dense(u, name=f"mlp_{i}") for i, u in enumerate(self.hidden_units)]
        self.acts = [_activation(self.activation, f"mlp_act_{i}") for i in range(len(self.hidden_units))]
        self.head = keras.layers.Dense(1, name="logit")

    def _embed(self, name: str, x: tf.Tensor) -> tf.Tensor:
        return self.embeddings[name](self.hashing(x))

    def candidate_key(self, features) -> tf.Tensor:
        """``v_a``: ``[B, 2d]`` (category, brand) embeddings of the candidate."""
        return tf.concat([self._embed(k, tf.reshape(features[k], [-1])) for k in _KEYS], axis=-1)

    def behaviours(self, features):
        """``(e [B, H, 2d], mask [B, H])`` of the history (mask: ``category != ""``)."""
        cats, brands = (tf.convert_to_tensor(features[n]) for n in HISTORY)
        e = tf.concat([self._embed("category", cats), self._embed("brand", brands)], axis=-1)
        return e, tf.not_equal(cats, "")

    def call(self, features, training=None):
        parts = [self._embed(f, tf.reshape(features[f], [-1])) for f in self.features]
        if self.embedding_l2 > 0 and training:
            self.add_loss(self.embedding_l2 * tf.reduce_mean(tf.add_n([tf.reduce_sum(tf.square(p), -1)
                                                                       for p in parts])))
        price = tf.reshape(tf.cast(features["price"], tf.float32), [-1, 1])
        parts.append(tf.math.log1p(tf.maximum(price, 0.0)))
        if self.use_history:
            e, mask = self.behaviours(features)
            pooled, _ = self.attention(e, self.candidate_key(features), mask, training=training)
            parts.append(pooled)
        x = tf.concat(parts, axis=-1)
        for dense, act in zip(self.dense, self.acts):
            x = act(dense(x), training=training)
        logit = tf.squeeze(self.head(x), -1)
        return {"logit": logit, "probability": tf.sigmoid(logit)}

    def attention_weights(self, features) -> tf.Tensor:
        """``[B, H]`` activation-unit weights of the history (inference mode; 0 on padding)."""
        e, mask = self.behaviours(features)
        return self.attention(e, self.candidate_key(features), mask, training=False)[1]

    def input_signature(self) -> Dict[str, tf.TensorSpec]:
        spec = {f: tf.TensorSpec([None], tf.string, name=f) for f in CONTEXT_FEATURES + ITEM_FEATURES}
        spec["price"] = tf.TensorSpec([None], tf.float32, name="price")
        spec.update({n: tf.TensorSpec([None, None], tf.string, name=n) for n in HISTORY})
        return spec

    def dummy_inputs(self) -> Dict[str, tf.Tensor]:
        """A one-example input that builds every weight."""
        x = {f: tf.constant(["x"]) for f in CONTEXT_FEATURES + ITEM_FEATURES}
        x["price"] = tf.constant([1.0])
        x.update({n: tf.constant([["x"]]) for n in HISTORY})
        return x

    def build_from_config(self, config):
        self(self.dummy_inputs(), training=False)

    def get_config(self):
        return {"hash_bins": self.hash_bins, "embedding_dim": self.embedding_dim,
                "attention_units": self.attention_units, "hidden_units": self.hidden_units,
                "activation": self.activation, "use_history": self.use_history, "embedding_l2": self.embedding_l2,
                "exclude": self.exclude, "name": self.name}
