"""A multilayer perceptron: Dense -> (BatchNorm) -> ReLU -> Dropout per hidden layer."""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf
import tf_keras as keras


@keras.saving.register_keras_serializable(package="tfrec")
class MLP(keras.layers.Layer):
    """Hidden layers ``h_{k+1} = dropout(relu(BN(W_k h_k + b_k)))``.

    Call args: ``x`` of shape ``[batch, d]``; returns ``[batch, hidden_units[-1]]``.

    Args:
      hidden_units: sizes of the hidden layers.
      dropout: dropout rate after each hidden layer (training only).
      batch_norm: batch normalisation before the activation.
      kernel_l2: L2 coefficient on the kernels.
      activation: activation name.
    """

    def __init__(self, hidden_units: Sequence[int], dropout: float = 0.0, batch_norm: bool = False,
                 kernel_l2: float = 0.0, activation: str = "relu", **kwargs):
        super().__init__(**kwargs)
        if not hidden_units or any(int(u) <= 0 for u in hidden_units):
            raise ValueError(f"`hidden_units` must be positive sizes. Received: hidden_units={list(hidden_units)}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout}")
        self.hidden_units = [int(u) for u in hidden_units]
        self.dropout = float(dropout)
        self.batch_norm = bool(batch_norm)
        self.kernel_l2 = float(kernel_l2)
        self.activation = activation
        reg = keras.regularizers.l2(self.kernel_l2) if self.kernel_l2 > 0 else None
        self.dense_layers = [keras.layers.Dense(u, kernel_regularizer=reg, name=f"dense_{i}")
                             for i, u in enumerate(self.hidden_units)]
        self.norm_layers = ([keras.layers.BatchNormalization(name=f"bn_{i}") for i in range(len(hidden_units))]
                            if self.batch_norm else [])
        self.act = keras.layers.Activation(activation)
        self.drop = keras.layers.Dropout(self.dropout) if self.dropout > 0 else None

    def call(self, x: tf.Tensor, training=None) -> tf.Tensor:
        for i, dense in enumerate(self.dense_layers):
            x = dense(x)
            if self.batch_norm:
                x = self.norm_layers[i](x, training=training)
            x = self.act(x)
            if self.drop is not None:
                x = self.drop(x, training=training)
        return x

    def get_config(self):
        return {**super().get_config(), "hidden_units": self.hidden_units, "dropout": self.dropout,
                "batch_norm": self.batch_norm, "kernel_l2": self.kernel_l2, "activation": self.activation}
