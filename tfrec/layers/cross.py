"""DCN V2 cross layers (Wang et al., "DCN V2", WWW 2021, Eq. 1).

tfrs ships a ``Cross`` layer with the same formula, but in TensorFlow 2.15 it subclasses the ``keras`` package's
``Layer`` while tfrec builds on ``tf_keras``; the two Keras copies do not share tracking or serialization, so
tfrec keeps its own (twenty lines) and tests it against the formula.
"""

from __future__ import annotations

from typing import Optional

import tensorflow as tf
import tf_keras as keras


@keras.saving.register_keras_serializable(package="tfrec")
class Cross(keras.layers.Layer):
    """One DCN V2 cross layer.

    Full rank:   ``x_{l+1} = x_0 * (W x_l + b) + x_l``                    (DCN V2 Eq. 1)
    Low rank r:  ``x_{l+1} = x_0 * (U (V^T x_l) + b) + x_l``, ``U, V`` of shape ``[d, r]``.

    Call args: ``x0`` and ``x`` of shape ``[batch, d]``; returns ``[batch, d]``.

    Args:
      low_rank: 0 for a full-rank ``W``; otherwise the rank ``r``.
      kernel_l2: L2 coefficient on ``W`` (or ``U`` and ``V``).
    """

    def __init__(self, low_rank: int = 0, kernel_l2: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        if low_rank < 0:
            raise ValueError(f"`low_rank` must be >= 0. Received: low_rank={low_rank}")
        self.low_rank = int(low_rank)
        self.kernel_l2 = float(kernel_l2)

    def build(self, input_shape):
        d = int(input_shape[-1])
        reg = keras.regularizers.l2(self.kernel_l2) if self.kernel_l2 > 0 else None
        if self.low_rank:
            self.u = self.add_weight("u", shape=[d, self.low_rank], regularizer=reg,
                                     initializer=keras.initializers.GlorotUniform())
            self.v = self.add_weight("v", shape=[d, self.low_rank], regularizer=reg,
                                     initializer=keras.initializers.GlorotUniform())
        else:
            self.w = self.add_weight("w", shape=[d, d], regularizer=reg,
                                     initializer=keras.initializers.GlorotUniform())
        self.b = self.add_weight("b", shape=[d], initializer="zeros")
        super().build(input_shape)

    def call(self, x0: tf.Tensor, x: Optional[tf.Tensor] = None) -> tf.Tensor:
        x = x0 if x is None else x
        if self.low_rank:
            prod = tf.matmul(tf.matmul(x, self.v), self.u, transpose_b=True)
        else:
            prod = tf.matmul(x, self.w, transpose_b=True)  # (W x_l) for row vectors
        return x0 * (prod + self.b) + x

    def get_config(self):
        return {**super().get_config(), "low_rank": self.low_rank, "kernel_l2": self.kernel_l2}


@keras.saving.register_keras_serializable(package="tfrec")
class CrossNetwork(keras.layers.Layer):
    """A stack of :class:`Cross` layers sharing ``x_0``: ``x_L = Cross_L(x_0, ... Cross_1(x_0, x_0))``.

    Args:
      num_layers: number of cross layers (>= 1).
      low_rank: passed to each :class:`Cross`.
      kernel_l2: passed to each :class:`Cross`.
    """

    def __init__(self, num_layers: int = 3, low_rank: int = 0, kernel_l2: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        if num_layers < 1:
            raise ValueError(f"`num_layers` must be >= 1. Received: num_layers={num_layers}")
        self.num_layers = int(num_layers)
        self.low_rank = int(low_rank)
        self.kernel_l2 = float(kernel_l2)
        self.cross_layers = [Cross(low_rank, kernel_l2, name=f"cross_{i}") for i in range(self.num_layers)]

    def call(self, x0: tf.Tensor) -> tf.Tensor:
        x = x0
        for layer in self.cross_layers:
            x = layer(x0, x)
        return x

    def get_config(self):
        return {**super().get_config(), "num_layers": self.num_layers, "low_rank": self.low_rank,
                "kernel_l2": self.kernel_l2}
