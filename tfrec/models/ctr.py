"""DCN V2 for CTR prediction (Wang et al., WWW 2021), the backbone of the KDD 2024 experiments.

Defaults are the KDD 2024 / BARS Criteo x1 setting: parallel structure, 3 full-rank cross layers, DNN
[500, 500, 500], embedding dim 10, dropout 0.1, embedding L2 1e-5.

* parallel: ``h = [Cross(x0) ; DNN(x0)]``, ``z = w^T h + b``
* stacked:  ``h = DNN(Cross(x0))``,       ``z = w^T h + b``

``x0`` is the concatenation of all field embeddings. The model returns ``logit`` ``z`` ``[batch]``,
``probability`` ``sigma(z)`` and ``embedding`` ``h`` (the penultimate representation, ``[batch, d_h]``).

With ``head="jrc"`` (the two-logit head of JRC, KDD 2024 Eq. 6-7) the last layer has two units,
``(z_0, z_1) = W^T h + b`` (non-click, click), returned as ``logits`` ``[batch, 2]``; ``logit`` is then
``z_1 - z_0`` and ``probability`` the click probability of the 2-way softmax, ``softmax(z)_1 = sigma(z_1 - z_0)``,
so metrics, export and the BCE-family losses work unchanged on either head.
"""

from __future__ import annotations

from typing import List, Mapping, Sequence

import tensorflow as tf
import tf_keras as keras

from tfrec.layers import MLP, CrossNetwork, FeatureEmbedding
from tfrec.models.base import RankingModel

HEADS = ("binary", "jrc")


@keras.saving.register_keras_serializable(package="tfrec")
class DCNv2(RankingModel):
    """DCN V2 over raw features (the preprocessing is inside :class:`FeatureEmbedding`).

    Args:
      dense / categorical / vocabularies / transform / embedding_dim / embedding_l2: see
        :class:`tfrec.layers.FeatureEmbedding`.
      structure: ``parallel`` or ``stacked``.
      num_cross_layers: cross layers (0 = DNN only).
      cross_low_rank: 0 full rank, else the rank of the cross kernels.
      dnn_hidden_units: DNN sizes (empty = cross network only).
      dropout: DNN dropout.
      net_l2: L2 on the cross and DNN kernels.
      batch_norm: batch normalisation in the DNN.
      head: ``binary`` (one logit) or ``jrc`` (two logits, non-click and click, for the JRC loss).
    """

    def __init__(self, dense: Sequence[str], categorical: Sequence[str], vocabularies: Mapping[str, List[str]],
                 transform: Mapping[str, object], embedding_dim: int = 10, embedding_l2: float = 1e-5,
                 structure: str = "parallel", num_cross_layers: int = 3, cross_low_rank: int = 0,
                 dnn_hidden_units: Sequence[int] = (500, 500, 500), dropout: float = 0.1, net_l2: float = 0.0,
                 batch_norm: bool = False, head: str = "binary", **kwargs):
        super().__init__(**kwargs)
        if head not in HEADS:
            raise ValueError(f"`head` must be one of {HEADS}. Received: head={head!r}")
        if structure not in ("parallel", "stacked"):
            raise ValueError(f"`structure` must be 'parallel' or 'stacked'. Received: structure={structure!r}")
        if num_cross_layers <= 0 and not dnn_hidden_units:
            raise ValueError("DCN V2 needs cross layers or DNN layers. Received: num_cross_layers="
                             f"{num_cross_layers}, dnn_hidden_units={list(dnn_hidden_units)}")
        self.embedding = FeatureEmbedding(dense, categorical, vocabularies, transform, embedding_dim,
                                          embedding_l2, name="features")
        self.structure = structure
        self.num_cross_layers = int(num_cross_layers)
        self.cross_low_rank = int(cross_low_rank)
        self.dnn_hidden_units = [int(u) for u in dnn_hidden_units]
        self.dropout = float(dropout)
        self.net_l2 = float(net_l2)
        self.batch_norm = bool(batch_norm)
        self.cross = (CrossNetwork(self.num_cross_layers, self.cross_low_rank, self.net_l2, name="cross")
                      if self.num_cross_layers > 0 else None)
        self.dnn = (MLP(self.dnn_hidden_units, self.dropout, self.batch_norm, self.net_l2, name="dnn")
                    if self.dnn_hidden_units else None)
        self.head_type = head
        # `head` keeps its attribute and layer name for the binary head, so existing checkpoints still load.
        self.head = (keras.layers.Dense(1, name="logit") if head == "binary"
                     else keras.layers.Dense(2, name="logits"))

    def input_signature(self):
        spec = {d: tf.TensorSpec([None], tf.float32, name=d) for d in self.embedding.dense}
        spec.update({c: tf.TensorSpec([None], tf.string, name=c) for c in self.embedding.categorical})
        return spec

    def call(self, features, training=None):
        emb = self.embedding(features)
        x0 = tf.reshape(emb, [-1, self.embedding.num_fields * self.embedding.embedding_dim])
        if self.structure == "parallel":
            parts = []
            if self.cross is not None:
                parts.append(self.cross(x0))
            if self.dnn is not None:
                parts.append(self.dnn(x0, training=training))
            h = tf.concat(parts, axis=1) if len(parts) > 1 else parts[0]
        else:
            h = self.cross(x0) if self.cross is not None else x0
            if self.dnn is not None:
                h = self.dnn(h, training=training)
        if self.head_type == "jrc":
            logits = self.head(h)  # [batch, 2] = (non-click, click)
            logit = logits[:, 1] - logits[:, 0]
            return {"logit": logit, "probability": tf.sigmoid(logit), "logits": logits, "embedding": h}
        logit = tf.squeeze(self.head(h), axis=1)
        return {"logit": logit, "probability": tf.sigmoid(logit), "embedding": h}

    def diagnostic_variables(self):
        """The parameter groups of the gradient diagnostics (KDD 2024 Fig. 3), in order: ``dnn0`` the kernel of
        the bottom DNN layer, then ``cross0``, ``cross1``, ... the kernel of each cross layer (``W``, or ``U`` and
        ``V`` together for a low-rank cross). Groups of absent parts are left out. Call after the model is built.
        """
        out = {}
        if self.dnn is not None:
            out["dnn0"] = (self.dnn.dense_layers[0].kernel,)
        if self.cross is not None:
            for i, layer in enumerate(self.cross.cross_layers):
                out[f"cross{i}"] = (layer.u, layer.v) if layer.low_rank else (layer.w,)
        return out

    def get_config(self):
        emb = self.embedding.get_config()
        return {"dense": emb["dense"], "categorical": emb["categorical"], "vocabularies": emb["vocabularies"],
                "transform": emb["transform"], "embedding_dim": emb["embedding_dim"],
                "embedding_l2": emb["embedding_l2"], "structure": self.structure,
                "num_cross_layers": self.num_cross_layers, "cross_low_rank": self.cross_low_rank,
                "dnn_hidden_units": self.dnn_hidden_units, "dropout": self.dropout, "net_l2": self.net_l2,
                "batch_norm": self.batch_norm, "head": self.head_type, "name": self.name}
