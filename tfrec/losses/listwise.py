"""List-wise losses as plain functions on tensors: ListNet (KDD 2024 Eq. 3), ListCE (the RCR rank term, Eq. 5)
and JRC (Eq. 6-7).

The list is the batch (or what ``pairing`` gathers of it; see :mod:`tfrec.losses.distributed`): every softmax
denominator runs over the batch's valid (non-padding) samples. Positive samples enter the denominators with their
weight (the ``weight`` feature, beta_pos on positives) as in the KDD 2024 paper's code; negatives with weight 1
(a weight given for a negative is not used, the Eq. 15 convention). All log-softmaxes are computed with a masked,
max-shifted log-sum-exp (:func:`masked_logsumexp`), so logits of any finite size give finite losses and
gradients, and padding gets exactly zero gradient.
"""

from __future__ import annotations

from typing import Optional, Tuple

import tensorflow as tf


def masked_logsumexp(x: tf.Tensor, mask: tf.Tensor, axis: int = -1) -> tf.Tensor:
    """``log sum_{k: mask_k} exp(x_k)`` along ``axis``; 0 where the mask selects nothing.

    Stable (shifted by the masked maximum) and NaN-free in the gradient: masked-out entries are replaced by the
    shift before ``exp`` (so no ``inf`` hides behind a ``tf.where``) and receive zero gradient.
    """
    mask = tf.cast(mask, tf.bool)
    any_ = tf.reduce_any(mask, axis=axis, keepdims=True)
    lowest = tf.constant(x.dtype.min, x.dtype)
    shift = tf.reduce_max(tf.where(mask, x, lowest), axis=axis, keepdims=True)
    shift = tf.stop_gradient(tf.where(any_, shift, tf.zeros_like(shift)))
    safe = tf.where(mask, x, tf.broadcast_to(shift, tf.shape(x)))
    total = tf.reduce_sum(tf.where(mask, tf.exp(safe - shift), tf.zeros_like(x)), axis=axis, keepdims=True)
    total = tf.where(any_, total, tf.ones_like(total))
    out = tf.where(any_, tf.math.log(total) + shift, tf.zeros_like(total))
    return tf.squeeze(out, axis=axis)


def _prepare(labels: tf.Tensor, logits: tf.Tensor, weights: Optional[tf.Tensor]):
    """Flattened ``(z, valid, pos, w)``: ``valid`` = not padding, ``pos`` = valid positives (label 1), ``w`` the
    per-sample weight (the given weight on positives, 1 on negatives and padding)."""
    logits = tf.reshape(tf.convert_to_tensor(logits), [-1])
    labels = tf.reshape(tf.cast(labels, logits.dtype), [-1])
    valid = labels >= 0
    pos = tf.logical_and(valid, tf.equal(labels, 1.0))
    if weights is None:
        w = tf.ones_like(logits)
    else:
        w = tf.where(pos, tf.reshape(tf.cast(weights, logits.dtype), [-1]), tf.ones_like(logits))
    return logits, valid, pos, w


def _log_weights(w: tf.Tensor, include: tf.Tensor) -> tf.Tensor:
    """``log w`` on ``include`` (0 elsewhere, and no ``log 0`` evaluated)."""
    return tf.math.log(tf.where(include, w, tf.ones_like(w)))


def _weighted_positive_mean(terms: tf.Tensor, pos: tf.Tensor, w: tf.Tensor) -> tf.Tensor:
    """``sum_{i in P} w_i t_i / sum_{i in P} w_i``; 0 with no positive (or zero total weight)."""
    a = tf.where(pos, w, tf.zeros_like(w))
    return tf.math.divide_no_nan(tf.reduce_sum(a * terms), tf.reduce_sum(a))


def list_net(labels: tf.Tensor, logits: tf.Tensor, weights: Optional[tf.Tensor] = None) -> tf.Tensor:
    """ListNet over the batch, KDD 2024 Eq. 3 (the ranking half of Combined-List).

    ```
    L = -1/N+ * sum_{i in P} log( exp(z_i) / sum_{k in V} w_k exp(z_k) )          (Eq. 3 with weights)
    ```

    ``V`` = the batch's valid samples, ``P`` its positives (label 1). Weights (``weights[i]``, the ``weight``
    feature: beta_pos on positives) enter in two places:

    * the softmax denominator: ``w_k`` = the weight for a positive, 1 for a negative (the paper's code weights
      positives by beta_pos inside the denominator; a weight given for a negative is not used);
    * the average over positives: the weighted mean ``sum_{i in P} w_i l_i / sum_{i in P} w_i`` with
      ``l_i = -log(exp(z_i) / sum_k w_k exp(z_k))``, which is ``1/N+ * sum_i l_i`` whenever the positives share
      one weight (the dataset's beta_pos).

    Without weights it is Eq. 3 exactly. Computed as ``l_i = LSE_k(z_k + log w_k) - z_i``. Gradient, with
    ``q_k = w_k exp(z_k) / sum_j w_j exp(z_j)`` and ``a_k = w_k [k in P] / sum_{i in P} w_i``:
    ``dL/dz_k = q_k - a_k``; on a negative ``dL/dz_k = q_k`` (each positive's softmax contributes ``q_k``,
    averaged over the positives), which stays large however small ``sigma(z_k)`` is, the paper's
    gradient-vanishing argument.

    Args:
      labels: ``[batch]`` in {0, 1}; labels < 0 are padding and excluded (from the sums and the denominators).
      logits: ``[batch]`` logits ``z``.
      weights: optional ``[batch]`` positive-sample weights (> 0).

    Returns:
      Scalar loss; 0 (zero gradient) with no positive.
    """
    z, valid, pos, w = _prepare(labels, logits, weights)
    lse = masked_logsumexp(z + _log_weights(w, valid), valid)
    return _weighted_positive_mean(lse - z, pos, w)


def list_ce(labels: tf.Tensor, logits: tf.Tensor, weights: Optional[tf.Tensor] = None) -> tf.Tensor:
    """ListCE, the rank term of RCR, KDD 2024 Eq. 5 (Bai et al. 2023, regression-compatible ranking).

    ```
    L = -1/N+ * sum_{i in P} log( sigma(z_i) / sum_{k in V} w_k sigma(z_k) )
    ```

    ListNet with ``sigma(z)`` in place of ``exp(z)``, so its minimum is compatible with calibrated
    probabilities. Weights enter exactly as in :func:`list_net` (``w_k`` = weight on positives, 1 on negatives
    in the denominator; the weighted mean over positives, ``1/N+`` when positive weights are equal). Computed in
    log space: ``l_i = LSE_k(log_sigmoid(z_k) + log w_k) - log_sigmoid(z_i)`` (finite for any finite logit).
    Gradient, with ``q_k = w_k sigma(z_k) / sum_j w_j sigma(z_j)`` and ``a_k`` as in :func:`list_net`:
    ``dL/dz_k = (1 - sigma(z_k)) * (q_k - a_k)``.

    Args:
      labels: ``[batch]`` in {0, 1}; labels < 0 are padding and excluded.
      logits: ``[batch]`` logits ``z``.
      weights: optional ``[batch]`` positive-sample weights (> 0).

    Returns:
      Scalar loss; 0 (zero gradient) with no positive.
    """
    z, valid, pos, w = _prepare(labels, logits, weights)
    log_p = tf.math.log_sigmoid(z)
    lse = masked_logsumexp(log_p + _log_weights(w, valid), valid)
    return _weighted_positive_mean(lse - log_p, pos, w)


def check_logits2(logits2: tf.Tensor) -> tf.Tensor:
    """``logits2`` as ``[batch, 2]``; a ValueError for another static shape."""
    logits2 = tf.convert_to_tensor(logits2)
    if logits2.shape.rank is not None and (logits2.shape.rank != 2 or logits2.shape[-1] not in (None, 2)):
        raise ValueError(f"JRC needs logits of shape [batch, 2] = (non-click, click). Received: shape {logits2.shape}")
    return tf.reshape(logits2, [-1, 2])


def jrc_terms(labels: tf.Tensor, logits2: tf.Tensor,
              weights: Optional[tf.Tensor] = None) -> Tuple[tf.Tensor, tf.Tensor]:
    """The two JRC terms ``(L_clf, L_rank)``, KDD 2024 Eq. 6 and Eq. 7 (Sheng et al. 2023).

    ```
    L_clf  = -1/N * sum_{i in V} w_i log( exp(z_{i,y_i}) / (exp(z_{i,0}) + exp(z_{i,1})) )          (Eq. 6)
    L_rank = -1/N * sum_{i in V} w_i log( exp(z_{i,y_i}) / sum_{k in V} w_k exp(z_{k,y_i}) )        (Eq. 7)
    ```

    ``z_{i,0}`` / ``z_{i,1}`` are the non-click / click logits of sample ``i`` (columns 0 and 1 of
    ``logits2``). Eq. 7 is a softmax over the batch of one column: a positive's click logit competes with every
    sample's click logit, a negative's non-click logit with every sample's non-click logit.

    Weighting (tfrec's reading; Eq. 6-7 are unweighted): ``w_i`` is the per-sample weight of Eq. 15 (the weight
    for positives, 1 for negatives), which multiplies each sample's term, and both sums are divided by ``N``, the
    number of valid samples (not by the sum of weights), as BCE's Eq. 15; in the Eq. 7 denominator positives count
    with their weight ``w_k`` and negatives with 1, as in :func:`list_net`. Without weights both are the paper's
    formulas exactly.

    Gradients (``s_i`` the 2-way softmax of sample ``i``; ``q_{k,c} = w_k exp(z_{k,c}) / sum_j w_j exp(z_{j,c})``;
    ``S_c = sum_{i: y_i = c} w_i``):
    ``dL_clf/dz_{k,c} = w_k (s_{k,c} - [y_k = c]) / N`` and ``dL_rank/dz_{k,c} = (S_c q_{k,c} - w_k [y_k = c]) / N``.

    Args:
      labels: ``[batch]`` in {0, 1}; labels < 0 are padding and excluded.
      logits2: ``[batch, 2]`` logits (non-click, click).
      weights: optional ``[batch]`` positive-sample weights (> 0).

    Returns:
      ``(L_clf, L_rank)``, scalars; both 0 for a batch with no valid sample.
    """
    logits2 = check_logits2(logits2)
    labels = tf.reshape(tf.cast(labels, logits2.dtype), [-1])
    valid = labels >= 0
    pos = tf.logical_and(valid, tf.equal(labels, 1.0))
    w = tf.ones_like(labels) if weights is None else tf.where(
        pos, tf.reshape(tf.cast(weights, logits2.dtype), [-1]), tf.ones_like(labels))
    n = tf.reduce_sum(tf.cast(valid, logits2.dtype))
    z0, z1 = logits2[:, 0], logits2[:, 1]
    z_y = tf.where(pos, z1, z0)  # the logit of the sample's own label
    sample_w = tf.where(valid, w, tf.zeros_like(w))
    # Eq. 6: -log softmax over the two logits of a sample.
    clf = tf.reduce_sum(sample_w * (tf.reduce_logsumexp(logits2, axis=1) - z_y))
    # Eq. 7: -log softmax over the batch of the column of the sample's label.
    log_w = _log_weights(w, valid)
    lse0 = masked_logsumexp(z0 + log_w, valid)
    lse1 = masked_logsumexp(z1 + log_w, valid)
    rank = tf.reduce_sum(sample_w * (tf.where(pos, lse1, lse0) - z_y))
    return tf.math.divide_no_nan(clf, n), tf.math.divide_no_nan(rank, n)


def jrc(labels: tf.Tensor, logits2: tf.Tensor, weights: Optional[tf.Tensor] = None,
        alpha: float = 0.5) -> tf.Tensor:
    """JRC, KDD 2024 Eq. 4 with Eq. 6-7: ``L = alpha * L_clf + (1 - alpha) * L_rank``; see :func:`jrc_terms`.

    ``alpha`` weights the classification (calibration) term, JRC's calibration weight.

    Args:
      labels: ``[batch]`` in {0, 1}; labels < 0 are padding.
      logits2: ``[batch, 2]`` logits (non-click, click).
      weights: optional ``[batch]`` positive-sample weights.
      alpha: weight of ``L_clf``, in [0, 1].

    Returns:
      Scalar loss; 0 for a batch with no valid sample.
    """
    clf, rank = jrc_terms(labels, logits2, weights)
    return alpha * clf + (1.0 - alpha) * rank
