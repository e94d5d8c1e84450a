r"""The pre-ranking baselines of HCCP's Table 2 as plain functions on tensors: COPR and Rethink (ASMOL).

HCCP section 4.1.3 describes them in one sentence each, and compares them on its Three-Tower model:

* COPR (Zhao et al., "COPR: Consistency-Oriented Pre-Ranking for Online Advertising", CIKM 2023; HCCP ref. [38])
  "implements a relaxation net, and CTR, pairwise consistency, regularization losses using ranking candidates";
  its abstract: chunk-based sampling of the ranking candidates, a plug-and-play rank alignment module that
  optimises the consistency of the ranked results, and "a Delta NDCG-based weighting mechanism ... to better
  distinguish the importance of inter-chunk samples".
* Rethink (Zhang et al., "Rethinking the Role of Pre-ranking in Large-scale E-Commerce Searching System", arXiv
  2305.13647, 2023; HCCP ref. [37]; its framework is ASMOL) "achieves a list-wise loss on impressions, ranking,
  and pre-ranking candidates and a distillation loss on impressions with predicted CTR", and adds an exposure task
  (HCCP 4.4.3).

The two papers' full texts are not among tfrec's sources, so the formulas below are tfrec's reading of those
descriptions (equation numbers are this module's own, B1-B5); each is tested against a NumPy oracle, with its
gradient, in ``tests/tfrec/losses/test_losses_cascade_baselines.py``. Layout: one request per row, ``[B, K]``; every
loss sums over each request's items and divides by ``B`` (``1/|U|``, as HCCP's Eq. 1-5), so a request's loss depends
on its own row only and the per-replica value is exact under a distribution strategy.

COPR, on the ranking candidates of a request (items with a ranking order ``r >= 1``; on Taobao: the
impressions, ordered by DIN), chunks of ``chunk_size`` consecutive ranks: ``c_i = floor((r_i - 1) / chunk_size)``.

```
(B1)  z_i = s_i + delta_i                          s: the pre-ranking CTR logit; delta: the relaxation net's output
(B2)  L_pair = 1/|U| sum_u sum_{i, j in u: c_i < c_j} w_ij log(1 + exp(-(z_i - z_j)))
      w_ij = |g_i - g_j| * |1/log2(1 + p_i) - 1/log2(1 + p_j)| / IDCG_u     (Delta NDCG of swapping i and j)
      g_i = C_u - c_i (C_u: the request's number of chunks), p_i: i's 1-based position in the request's
      candidates sorted by z (descending; ties by column), IDCG_u = sum_k g_(k) / log2(1 + k) (gains sorted)
(B3)  L_reg = 1/|U| sum_u sum_{i in u} delta_i^2
```

Reading: the relaxation net lets the consistency score ``z`` differ from the CTR logit by a learned, penalised
offset, so the pairwise order of chunks is imposed on ``z`` while the CTR head keeps its BCE calibration
(COPR's criticism of strict score alignment); the regularisation keeps the relaxation small, so most of the
order still reaches ``s``. The Delta NDCG weights are LambdaRank's (Burges 2010), from the current positions of
``z``, held constant in the gradient (``stop_gradient``), with linear gains ``C_u - c`` (an exponential
``2^gain - 1`` overflows float32 on long lists). Pairs inside one chunk carry no order (weight 0).

Rethink (ASMOL), on the request's list ``V_u`` (the valid items given), with multi-hot positives ``P_u``:

```
(B4)  L_list = 1/|U| sum_u sum_{i in P_u} -log( exp(z_i) / sum_{j in V_u} exp(z_j) )
(B5)  L_distill = 1/|U| sum_u sum_{i in R^t_u} BCE(q_i, sigmoid(z_i)),   q_i the ranker's predicted CTR
```

Reading: (B4) is the softmax cross-entropy of a list with several positives (every positive against the whole
list, other positives included), applied per objective: exposure (positives: the impressions) and click
(positives: the clicked impressions); (B5) distils the ranker's predicted CTR on the impressions with a soft-label
BCE. A request with no positive, or an all-padding request, contributes 0 to (B2)-(B5).
"""

from __future__ import annotations

import tensorflow as tf


def _float(x) -> tf.Tensor:
    x = tf.convert_to_tensor(x)
    return x if x.dtype.is_floating else tf.cast(x, tf.float32)


def _num_lists(scores: tf.Tensor) -> tf.Tensor:
    return tf.cast(tf.shape(scores)[0], scores.dtype)


def chunk_ids(ranks: tf.Tensor, chunk_size: int) -> tf.Tensor:
    """``c = floor((r - 1) / chunk_size)`` (int32) for ranks ``r >= 1``; -1 where ``r < 1`` (not a candidate)."""
    r = tf.cast(ranks, tf.int32)
    return tf.where(r >= 1, (r - 1) // int(chunk_size), -1)


def delta_ndcg_weights(scores: tf.Tensor, chunks: tf.Tensor) -> tf.Tensor:
    """(B2)'s ``w_ij`` ``[B, K, K]`` for the pairs with ``c_i < c_j`` (0 elsewhere), constant in the gradient.

    Args:
      scores: ``[B, K]`` the scores ``z`` that give the current positions.
      chunks: ``[B, K]`` int chunk ids, ``< 0`` for items that are not candidates.
    """
    scores = tf.stop_gradient(_float(scores))
    dtype = scores.dtype
    valid = chunks >= 0
    # 1-based position of each valid item by descending score (ties by column), padding last.
    key = tf.where(valid, -tf.cast(scores, tf.float64), tf.constant(float("inf"), tf.float64))
    order = tf.argsort(key, axis=1, stable=True)
    positions = tf.argsort(order, axis=1, stable=True) + 1
    discount = tf.where(valid, 1.0 / (tf.math.log(tf.cast(positions, dtype) + 1.0) / tf.math.log(
        tf.constant(2.0, dtype))), tf.zeros([], dtype))
    n_chunks = tf.reduce_max(tf.where(valid, chunks, -1), axis=1, keepdims=True) + 1
    gains = tf.where(valid, tf.cast(n_chunks - chunks, dtype), tf.zeros([], dtype))
    # IDCG: gains sorted descending against the discounts of positions 1, 2, ...
    sorted_gains = tf.sort(gains, axis=1, direction="DESCENDING")
    ranks = tf.cast(tf.range(1, tf.shape(gains)[1] + 1), dtype)
    idcg = tf.reduce_sum(sorted_gains / (tf.math.log(ranks + 1.0) / tf.math.log(tf.constant(2.0, dtype))), axis=1)
    pair = tf.logical_and(tf.logical_and(valid[:, :, None], valid[:, None, :]), chunks[:, :, None] < chunks[:, None, :])
    w = tf.abs(gains[:, :, None] - gains[:, None, :]) * tf.abs(discount[:, :, None] - discount[:, None, :])
    w = tf.math.divide_no_nan(w, idcg[:, None, None])
    return tf.where(pair, w, tf.zeros([], dtype))


def copr_pairwise(scores: tf.Tensor, ranks: tf.Tensor, chunk_size: int = 1) -> tf.Tensor:
    """(B2): the Delta-NDCG-weighted pairwise logistic loss of the chunk order, over ``|U|`` = ``B``.

    Args:
      scores: ``[B, K]`` the relaxed scores ``z`` (B1).
      ranks: ``[B, K]`` ranking orders ``r`` (1-based, smaller = better); ``< 1`` marks non-candidates and padding.
      chunk_size: ranks per chunk (1: every rank its own chunk, the full ranking order).

    Returns:
      Scalar loss; 0 for a batch without an inter-chunk pair.
    """
    if int(chunk_size) < 1:
        raise ValueError(f"`chunk_size` must be >= 1. Received: chunk_size={chunk_size}")
    scores = _float(scores)
    w = delta_ndcg_weights(scores, chunk_ids(ranks, chunk_size))
    diff = scores[:, :, None] - scores[:, None, :]
    per_pair = tf.where(w > 0, w * tf.nn.softplus(-diff), tf.zeros_like(w))
    return tf.math.divide_no_nan(tf.reduce_sum(per_pair), _num_lists(scores))


def copr_regularization(delta: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """(B3): ``1/|U| sum_u sum_{i in u} delta_i^2`` over the items where ``mask`` is True."""
    delta = _float(delta)
    sq = tf.where(tf.cast(mask, tf.bool), tf.square(delta), tf.zeros_like(delta))
    return tf.math.divide_no_nan(tf.reduce_sum(sq), _num_lists(delta))


def multi_positive_softmax(scores: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """(B4): the list softmax cross-entropy of each positive against the request's valid items, over ``B``.

    Args:
      scores: ``[B, K]`` logits.
      labels: ``[B, K]`` 1 positive, 0 negative, ``< 0`` padding (out of the list).

    Returns:
      Scalar loss; 0 for a batch without a positive.
    """
    scores = _float(scores)
    labels = tf.cast(labels, scores.dtype)
    valid = labels >= 0
    filled = tf.where(valid, scores, tf.fill(tf.shape(scores), scores.dtype.min))
    log_p = filled - tf.reduce_logsumexp(filled, axis=1, keepdims=True)
    positive = tf.logical_and(valid, labels > 0.5)
    per_item = tf.where(positive, -log_p, tf.zeros_like(log_p))
    return tf.math.divide_no_nan(tf.reduce_sum(per_item), _num_lists(scores))


def ranker_distillation(scores: tf.Tensor, teacher: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """(B5): soft-label BCE of ``sigmoid(scores)`` against the ranker's probabilities ``teacher`` on the items where
    ``mask`` is True (the impressions), summed and divided by ``B``."""
    scores = _float(scores)
    teacher = tf.cast(teacher, scores.dtype)
    use = tf.logical_and(tf.cast(mask, tf.bool), teacher >= 0)
    per = tf.nn.sigmoid_cross_entropy_with_logits(tf.where(use, teacher, tf.zeros_like(teacher)), scores)
    return tf.math.divide_no_nan(tf.reduce_sum(tf.where(use, per, tf.zeros_like(per))), _num_lists(scores))
