"""HCCP's consistency losses as plain functions on tensors: ListMLE over an arranged order (HCCP Eq. 3-4), and
the ListNet over impressions of its Base+ListNet baseline (section 4.1.3).

Why not ``tfr.keras.losses.ListMLELoss`` (TensorFlow Ranking 0.5.5, ``losses_impl.ListMLELoss``)? Its semantics
differ from Eq. 3-4 in four ways, so tfrec writes its own (and ``tests/tfrec/losses/test_losses_listmle.py`` shows the
two agree exactly where their semantics coincide):

* order: TF-Ranking sorts by relevance labels, higher first; HCCP orders by an arranged rank, smaller first.
  On tie-free inputs ``labels = max_rank - rank`` gives the same order.
* ties: TF-Ranking shuffles tied labels randomly (``shuffle_ties=True`` with a fixed op seed, so the value is
  stochastic under the graph seed); tfrec breaks ties by position (stable sort), deterministic, so a loss value
  and its gradient are reproducible and a 2-replica step equals a 1-device step.
* padding: TF-Ranking replaces padded logits by ``log(1e-10)`` and keeps them in the list, sorted last: each
  valid item's denominator gains ``n_pad * 1e-10`` (in absolute ``exp`` units, which matters when the logits are
  very negative), and the padded tail adds the constant ``log(n_pad!)`` to the list's value. Here padding is
  excluded from the items and from every denominator.
* reduction: its default (``AUTO`` = ``SUM_OVER_BATCH_SIZE`` with one weight per list) divides by the number of
  lists, which is Eq. 3's ``1/|U|`` with all-padding lists counted; that part matches.
"""

from __future__ import annotations

from typing import Optional

import tensorflow as tf


def list_mle(scores: tf.Tensor, ranks: tf.Tensor, mask: Optional[tf.Tensor] = None,
             weights: Optional[tf.Tensor] = None) -> tf.Tensor:
    """ListMLE over an arranged order: HCCP's global (Eq. 3, order ``r^c``) and local (Eq. 4, ``r^t``) consistency.

    ```
    L = -1/|U| * sum_{u in U} sum_{j=1}^{n_u} log( exp(y_{pi(j)}) / sum_{k=j}^{n_u} exp(y_{pi(k)}) )
    ```

    For each list (row) ``u``, ``pi`` orders the ``n_u`` valid items by ascending arranged rank (smaller rank =
    earlier = better). Ties are broken by position in the row (a stable sort: of two items with equal rank, the
    one in the lower column comes first), so the loss is deterministic. Padding (``mask`` False, or ``rank < 0``)
    is excluded from the items and from every denominator. ``|U|`` is the number of lists in the batch
    (``scores.shape[0]``), all-padding lists included: a request is a member of the batch whether or not it has
    items, and a fixed per-replica normaliser keeps the model's 1/replicas scaling exact under a distribution
    strategy (every list's loss depends on its own row only, so ``pairing="replica"`` is exact). An all-padding
    list and a one-item list contribute 0.

    The denominators are reverse cumulative log-sum-exps (``tf.math.cumulative_logsumexp``), stable for any
    logit magnitude. The gradient is ``dL/dy_{pi(j)} = (1/|U|) * (sum_{i<=j} softmax_{k>=i}(y)_{pi(j)} - 1)``
    (Plackett-Luce), tested against autodiff of a NumPy oracle.

    Arranged ranks and the padding convention: HCCP's ``r^c = r - (e + l^clk) * N^r`` is negative for exposed
    items, so it must be stored shifted (``r^c + 2 N^r >= 1``) or as the 0-based position in the arranged
    sequence; the loss depends only on the order, which any such shift preserves.

    Args:
      scores: ``[B, K]`` predicted scores ``y`` (the global consistency score for Eq. 3, the task's for Eq. 4).
      ranks: ``[B, K]`` arranged ranks (int or float); ``< 0`` marks padding.
      mask: optional ``[B, K]`` bool, False marks padding (in addition to ``rank < 0``).
      weights: optional per-list weights ``[B]`` (or ``[B, 1]``); a list's loss is multiplied by its weight, and
        the sum is still divided by ``|U|`` (not by the sum of weights). Eq. 3-4 have none (weight 1).

    Returns:
      Scalar loss (``scores``' dtype); 0 for a batch with no valid item.
    """
    scores = tf.convert_to_tensor(scores)
    if not scores.dtype.is_floating:
        scores = tf.cast(scores, tf.float32)
    ranks = tf.convert_to_tensor(ranks)
    scores.shape.assert_has_rank(2)
    dtype = scores.dtype
    valid = ranks >= tf.zeros([], ranks.dtype)
    if mask is not None:
        valid = tf.logical_and(valid, tf.cast(mask, tf.bool))
    # Sort key: the rank for valid items, +inf for padding (so it goes last); float64 holds int ranks exactly.
    key = tf.where(valid, tf.cast(ranks, tf.float64), tf.constant(float("inf"), tf.float64))
    order = tf.argsort(key, axis=1, direction="ASCENDING", stable=True)
    sorted_scores = tf.gather(scores, order, batch_dims=1)
    sorted_valid = tf.gather(valid, order, batch_dims=1)
    # Padding is last after the sort, so it only ever sits behind the valid items of its row; filling it with the
    # dtype's lowest finite value keeps it out of every valid item's log-sum-exp (exp underflows to exactly 0)
    # without the NaN gradients that -inf gives inside cumulative_logsumexp.
    filled = tf.where(sorted_valid, sorted_scores, tf.fill(tf.shape(sorted_scores), tf.constant(dtype.min, dtype)))
    log_denominators = tf.math.cumulative_logsumexp(filled, axis=1, reverse=True)
    per_item = tf.where(sorted_valid, log_denominators - filled, tf.zeros_like(filled))
    per_list = tf.reduce_sum(per_item, axis=1)
    if weights is not None:
        per_list = per_list * tf.reshape(tf.cast(weights, dtype), [-1])
    num_lists = tf.cast(tf.shape(scores)[0], dtype)
    return tf.math.divide_no_nan(tf.reduce_sum(per_list), num_lists)


def list_net_impressions(labels: tf.Tensor, logits: tf.Tensor, impressions: tf.Tensor) -> tf.Tensor:
    """ListNet over each request's impressions: the local consistency term of HCCP's Base+ListNet baseline.

    HCCP section 4.1.3 (2) names "List-Net losses [3]" on impressions beside BCE and gives no formula; tfrec
    reads it as ListNet's top-one cross entropy (Cao et al. 2007; the form of KDD 2024 Eq. 3) per request ``u``,
    over its impressions ``R^t_u``, with the labels normalised to a distribution, and HCCP's ``1/|U|`` (Eq. 1, 3-4):

    ```
    L = -1/|U| * sum_{u in U} sum_{j in R^t_u} (l_j / sum_{k in R^t_u} l_k) * log softmax_{R^t_u}(z)_j
    ```

    ``|U|`` is the number of requests (rows) in the batch, all of them. A request with no positive impression
    contributes 0 (its target distribution is undefined); items that are not impressions are out of the softmax
    (their logits are replaced by the dtype's lowest finite value, so their ``exp`` underflows to exactly 0) and
    out of the target. Gradient on an impression of a request with positives:
    ``dL/dz_j = (softmax_{R^t_u}(z)_j - l_j / sum_k l_k) / |U|``.

    Args:
      labels: ``[B, L]`` task labels ``l`` (float, >= 0).
      logits: ``[B, L]`` the task's logits ``z``.
      impressions: ``[B, L]`` bool, True on the request's impressions ``R^t_u`` (N1).

    Returns:
      Scalar loss (``logits``' dtype); 0 for a batch with no positive impression.
    """
    low = tf.fill(tf.shape(logits), logits.dtype.min)
    log_p = tf.nn.log_softmax(tf.where(impressions, logits, low), axis=1)
    target = tf.where(impressions, labels, tf.zeros_like(labels))
    target = tf.math.divide_no_nan(target, tf.reduce_sum(target, axis=1, keepdims=True))
    per = tf.reduce_sum(tf.where(target > 0, -target * log_p, tf.zeros_like(log_p)), axis=1)
    return tf.math.divide_no_nan(tf.reduce_sum(per), tf.cast(tf.shape(logits)[0], logits.dtype))
