"""Point-wise losses as plain functions on tensors: BCE with positive weights, Focal, Focal' (KDD 2024 Eq. 15-17)
and the impressions' BCE of HCCP's calibration tasks (HCCP Eq. 1)."""

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
    total, n = weighted_bce_sum(labels, logits, weights, beta_pos)
    return tf.math.divide_no_nan(total, n)


def weighted_bce_sum(labels: tf.Tensor, logits: tf.Tensor, weights: Optional[tf.Tensor] = None,
                     beta_pos: Optional[float] = None):
    """``(sum, N)`` of :func:`weighted_bce` (KDD 2024 Eq. 15): the sum of its per-example terms over the valid
    samples and their number ``N`` (float), for a caller that normalises itself (e.g. by a global count,
    :func:`tfrec.losses.distributed.global_mean`). Args as :func:`weighted_bce`."""
    logits = tf.convert_to_tensor(logits)
    labels = tf.reshape(tf.cast(labels, logits.dtype), [-1])
    logits = tf.reshape(logits, [-1])
    valid = tf.cast(labels >= 0, logits.dtype)
    y = labels * valid
    w = tf.ones_like(logits) if weights is None else tf.reshape(tf.cast(weights, logits.dtype), [-1])
    if beta_pos is not None:
        w = w * beta_pos
    # -log(sigma(z)) = softplus(-z), -log(1 - sigma(z)) = softplus(z): stable for huge |z|.
    per_example = y * w * tf.nn.softplus(-logits) + (1.0 - y) * tf.nn.softplus(logits)
    return tf.reduce_sum(per_example * valid), tf.reduce_sum(valid)


def _prepare(labels: tf.Tensor, logits: tf.Tensor, weights: Optional[tf.Tensor]):
    """Flattened ``(z, valid, y, w)``: ``valid`` marks non-padding samples, ``y`` is 0 on padding."""
    logits = tf.reshape(tf.convert_to_tensor(logits), [-1])
    labels = tf.reshape(tf.cast(labels, logits.dtype), [-1])
    valid = tf.cast(labels >= 0, logits.dtype)
    y = labels * valid
    w = tf.ones_like(logits) if weights is None else tf.reshape(tf.cast(weights, logits.dtype), [-1])
    return logits, valid, y, w


def check_gamma(gamma: float) -> float:
    """Validates a focal ``gamma`` argument, >= 0; returns it as a float."""
    if not float(gamma) >= 0.0:
        raise ValueError(f"`gamma` must be >= 0. Received: gamma={gamma}")
    return float(gamma)


def focal(labels: tf.Tensor, logits: tf.Tensor, weights: Optional[tf.Tensor] = None,
          gamma: float = 2.0) -> tf.Tensor:
    """Focal loss, KDD 2024 Eq. 16 (Lin et al. 2017), with the positive weights of Eq. 15.

    ```
    L = -1/N * sum_i [ w_i * y_i * (1 - p_i)^gamma * log(p_i) + (1 - y_i) * p_i^gamma * log(1 - p_i) ]
    p_i = sigma(z_i)
    ```

    ``w_i`` (the ``weight`` feature: beta_pos on positives, 1 on negatives) multiplies the positive term only and
    the sum is divided by N, the number of non-padding samples, as in :func:`weighted_bce`; ``gamma = 0`` is
    :func:`weighted_bce`. Computed in log space for stability: ``log(p) = -softplus(-z)``,
    ``log(1 - p) = -softplus(z)``, ``p^gamma = exp(gamma * log_sigmoid(z))``,
    ``(1 - p)^gamma = exp(gamma * log_sigmoid(-z))`` (finite loss and gradients for any finite logit).

    Args:
      labels: ``[batch]`` in {0, 1}; labels < 0 are padding and excluded (from the sum and from N).
      logits: ``[batch]`` logits ``z``.
      weights: optional ``[batch]`` positive-sample weights.
      gamma: focusing parameter, >= 0.

    Returns:
      Scalar loss; 0 for a batch with no valid sample.
    """
    gamma = check_gamma(gamma)
    z, valid, y, w = _prepare(labels, logits, weights)
    pos_weight = tf.exp(gamma * tf.math.log_sigmoid(-z))  # (1 - p)^gamma
    neg_weight = tf.exp(gamma * tf.math.log_sigmoid(z))  # p^gamma
    per_example = y * w * pos_weight * tf.nn.softplus(-z) + (1.0 - y) * neg_weight * tf.nn.softplus(z)
    return tf.math.divide_no_nan(tf.reduce_sum(per_example * valid), tf.reduce_sum(valid))


def normalized_focal(labels: tf.Tensor, logits: tf.Tensor, weights: Optional[tf.Tensor] = None,
                     gamma: float = 2.0) -> tf.Tensor:
    """The normalised focal loss Focal', KDD 2024 Eq. 17 (the Focal loss of the paper's code).

    ```
    L = -1/N * sum_i [ w_i * y_i * (1 - p_i)^gamma * log(p_i)
                       + (p_i^gamma + 1 - M) * (1 - y_i) * log(1 - p_i) ]
    M = 1/N- * sum_{k in N-} p_k^gamma
    ```

    The term ``1 - M`` shifts the negative weights so that their mean over the batch's negatives is 1, as BCE's
    (Eq. 16's ``p^gamma`` alone is always < 1). ``N-`` counts the batch's valid negatives; padding is excluded
    from ``M``, from the sum and from N. ``w_i`` multiplies the positive term only (Eq. 15 convention).

    The formula is followed literally: the negative weights ``p_i^gamma + 1 - M`` are functions of the logits
    and are differentiated through (no stop-gradient), so a negative's logit also receives gradient through its
    own ``p_i^gamma`` and, via ``M``, through every negative's loss term:
    ``dL/dz_j = 1/N * [ (p_j^g + 1 - M) * p_j - g * p_j^g * (1 - p_j) * (log(1 - p_j) - mean_{k in N-} log(1 - p_k)) ]``
    for a negative ``j`` (``g = gamma``). Stable log-space forms as in :func:`focal`.

    Args:
      labels: ``[batch]`` in {0, 1}; labels < 0 are padding and excluded.
      logits: ``[batch]`` logits ``z``.
      weights: optional ``[batch]`` positive-sample weights.
      gamma: focusing parameter, >= 0 (``gamma = 0`` is :func:`weighted_bce`).

    Returns:
      Scalar loss; 0 for a batch with no valid sample.
    """
    gamma = check_gamma(gamma)
    z, valid, y, w = _prepare(labels, logits, weights)
    neg = (1.0 - y) * valid
    p_gamma = tf.exp(gamma * tf.math.log_sigmoid(z))  # p^gamma
    mean_neg = tf.math.divide_no_nan(tf.reduce_sum(p_gamma * neg), tf.reduce_sum(neg))  # M
    pos_weight = tf.exp(gamma * tf.math.log_sigmoid(-z))  # (1 - p)^gamma
    per_example = (y * w * pos_weight * tf.nn.softplus(-z)
                   + (1.0 - y) * (p_gamma + 1.0 - mean_neg) * tf.nn.softplus(z))
    return tf.math.divide_no_nan(tf.reduce_sum(per_example * valid), tf.reduce_sum(valid))


def impression_bce(labels: tf.Tensor, logits: tf.Tensor, impressions: tf.Tensor) -> tf.Tensor:
    """The calibration loss of a Cxr task on impressions, HCCP Eq. 1 (Zhao et al., WWW 2025, section 3.1.1).

    ```
    L_cali^t = -1/|U| * sum_{u in U} sum_{j in R^t_u} [ l_j log(y_j) + (1 - l_j) log(1 - y_j) ],  y_j = sigma(z_j)
    ```

    Reading chosen: ``|U|`` is the number of requests (rows) in the batch, all of them, whether or not a row has an
    impression; the sum over impressions is divided by it (Eq. 1's normalisation, not a mean over impressions), so
    a request's weight does not depend on how many impressions the batch holds and the per-replica normaliser is
    fixed under a distribution strategy. Items that are not impressions (``impressions`` False: N2-N5 samples and
    padding) contribute nothing, whatever their label or logit. Computed as
    ``sigmoid_cross_entropy_with_logits`` (stable for any finite logit); gradient
    ``dL/dz_j = (sigma(z_j) - l_j) / |U|`` on impressions, 0 elsewhere.

    Args:
      labels: ``[B, L]`` task labels ``l`` in {0, 1} (float).
      logits: ``[B, L]`` the task's logits ``z``.
      impressions: ``[B, L]`` bool, True on the request's impressions ``R^t_u`` (N1).

    Returns:
      Scalar loss (``logits``' dtype); 0 for an empty batch.
    """
    per = tf.nn.sigmoid_cross_entropy_with_logits(tf.where(impressions, labels, tf.zeros_like(labels)), logits)
    total = tf.reduce_sum(tf.where(impressions, per, tf.zeros_like(per)))
    return tf.math.divide_no_nan(total, tf.cast(tf.shape(logits)[0], logits.dtype))  # 0 for an empty replica
