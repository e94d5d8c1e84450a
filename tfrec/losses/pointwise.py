"""Point-wise losses as plain functions on tensors."""

from __future__ import annotations

from typing import Optional

import tensorflow as tf


def weighted_bce(labels: tf.Tensor, logits: tf.Tensor, weights: Optional[tf.Tensor] = None,
                 beta_pos: Optional[float] = None) -> tf.Tensor:
    """Binary cross-entropy with positive weights, KDD 2024 Eq. 15.

    ```
    L = -1/N * sum_i [ w_i * y_i * log(sigma(z_i)) + (1 - y_i) * log(1 - sigma(z_i)) ]
    ```

    The weight multiplies the positive term only and the sum is divided by N, the number of (non-padding) samples,
    not by the sum of weights. ``w_i`` is ``weights[i]`` (the ``weight`` feature, which the pipeline sets to
    beta_pos for positives and 1 for negatives) times ``beta_pos`` when ``beta_pos`` is given; a weight given for
    a negative sample is not used (Eq. 15 leaves negatives unweighted). Gradient:
    ``dL/dz_i = (w_i * y_i * (sigma(z_i) - 1) + (1 - y_i) * sigma(z_i)) / N``.

    Args:
      labels: ``[batch]`` in {0, 1}; labels < 0 are padding and excluded (from the sum and from N).
      logits: ``[batch]`` logits ``z``.
      weights: optional ``[batch]`` positive-sample weights.
      beta_pos: optional extra factor on positives.

    Returns:
      Scalar loss; 0 for a batch with no valid sample.
    """
    labels = tf.reshape(tf.cast(labels, logits.dtype), [-1])
    logits = tf.reshape(logits, [-1])
    valid = tf.cast(labels >= 0, logits.dtype)
    y = labels * valid
    w = tf.ones_like(logits) if weights is None else tf.reshape(tf.cast(weights, logits.dtype), [-1])
    if beta_pos is not None:
        w = w * beta_pos
    # -log(sigma(z)) = softplus(-z), -log(1 - sigma(z)) = softplus(z): stable for huge |z|.
    per_example = y * w * tf.nn.softplus(-logits) + (1.0 - y) * tf.nn.softplus(logits)
    n = tf.reduce_sum(valid)
    return tf.math.divide_no_nan(tf.reduce_sum(per_example * valid), n)
