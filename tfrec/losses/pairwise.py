"""Pairwise losses as plain functions on tensors: RankNet (KDD 2024 Eq. 9) and PWiseR (Durmus et al. 2024).

Both sum a function of a score difference over all pairs of two groups of a batch (positives x negatives;
conversions x click-only / no-click samples). :func:`chunked_pair_sum` is the shared kernel: it computes the sum
and its gradient together, one block of rows at a time, so memory is bounded by ``max_pairs_per_chunk`` whatever
the batch size (at batch 65536 with 25% positives the 16384 x 49152 pair matrix would be 3.2 GB in float32).
"""

from __future__ import annotations

from typing import Callable, Optional, Tuple

import tensorflow as tf

from tfrec.losses.pointwise import weighted_bce

# Pairs per block (about 16 MiB per float32 temporary). Tune for the device; results do not depend on it.
DEFAULT_MAX_PAIRS_PER_CHUNK = 1 << 22

SPACES = ("probability", "logit")

PairFn = Callable[[tf.Tensor], Tuple[tf.Tensor, tf.Tensor]]


def check_max_pairs_per_chunk(max_pairs_per_chunk: int) -> int:
    """Validates a ``max_pairs_per_chunk`` argument; returns it as an int."""
    if isinstance(max_pairs_per_chunk, bool) or int(max_pairs_per_chunk) != max_pairs_per_chunk \
            or int(max_pairs_per_chunk) < 1:
        raise ValueError(f"`max_pairs_per_chunk` must be a positive integer. "
                         f"Received: max_pairs_per_chunk={max_pairs_per_chunk!r}")
    return int(max_pairs_per_chunk)


def chunked_pair_sum(rows: tf.Tensor, cols: tf.Tensor, fn: PairFn,
                     max_pairs_per_chunk: int = DEFAULT_MAX_PAIRS_PER_CHUNK,
                     outside_term: Optional[Callable[[tf.Tensor, tf.Tensor], tf.Tensor]] = None,
                     fn_on_sides: bool = False) -> tf.Tensor:
    """``S = sum_{i, j} f(cols_j - rows_i)`` over all pairs, differentiable, in memory-bounded blocks.

    ``fn(d)`` takes a ``[r, len(cols)]`` block of differences ``d_ij = cols_j - rows_i`` and returns
    ``(f(d), f'(d))`` elementwise (the first may also be the block's sum). The forward pass computes ``S`` and
    its gradient in the same pass over each block (``dS/dcols_j = sum_i f'(d_ij)``,
    ``dS/drows_i = -sum_j f'(d_ij)``); the backward pass only scales them by the incoming gradient (a
    ``tf.custom_gradient``). Blocks hold ``max(1, max_pairs_per_chunk // len(cols))`` rows and run one after
    another (a ``tf.while_loop`` with ``parallel_iterations=1``), so at most one block of pairs is alive at a
    time. The result does not depend on the block size beyond float rounding.

    ``outside_term(rows, cols)``, when given, is a part of ``S`` that is cheaper to compute without the pair
    loop (e.g. in O(n log n) after sorting): ``S = outside_term + sum_{i, j} value_ij``. ``fn``'s value then
    leaves that part out, but its derivative ``f'`` is still the derivative of the whole summand.

    Args:
      rows: ``[n_rows]`` scores (the side that should rank higher, e.g. positives).
      cols: ``[n_cols]`` scores (e.g. negatives).
      fn: the pair function and its derivative, elementwise on a block of differences.
      max_pairs_per_chunk: upper bound on the pairs of one block (at least one row per block).
      outside_term: optional part of the sum computed outside the pair loop.
      fn_on_sides: ``fn`` takes the block's two sides ``(rows_k, cols)`` instead of their differences (so it
        can form the block in a cheaper way than the broadcast difference).

    Returns:
      Scalar ``S`` (0 when either side is empty, with zero gradients).
    """
    max_pairs_per_chunk = check_max_pairs_per_chunk(max_pairs_per_chunk)
    rows = tf.reshape(rows, [-1])
    cols = tf.reshape(tf.cast(cols, rows.dtype), [-1])

    @tf.custom_gradient
    def pair_sum(a, b):
        n_rows = tf.shape(a)[0]
        n_cols = tf.shape(b)[0]
        block = tf.maximum(tf.constant(max_pairs_per_chunk, tf.int32) // tf.maximum(n_cols, 1), 1)
        n_blocks = tf.maximum((n_rows + block - 1) // block, 1)  # >= 1: an empty TensorArray cannot concat

        def block_sums(a_k):
            value, slope = fn(a_k, b) if fn_on_sides else fn(b[tf.newaxis, :] - a_k[:, tf.newaxis])
            # Column sums as a [1, r] x [r, n_cols] product: faster than reduce_sum(axis=0) on CPU.
            return (tf.reduce_sum(value), tf.linalg.matvec(slope, tf.ones_like(a_k), transpose_a=True),
                    -tf.linalg.matvec(slope, tf.ones_like(b)))

        def one_block():
            return block_sums(a)

        def blocks():
            grads_a = tf.TensorArray(a.dtype, size=n_blocks, infer_shape=False,
                                     element_shape=tf.TensorShape([None]))

            def body(k, total, grad_b, grads_a):
                start = k * block
                value, col_sums, row_sums = block_sums(a[start:tf.minimum(start + block, n_rows)])
                return k + 1, total + value, grad_b + col_sums, grads_a.write(k, row_sums)

            _, total, grad_b, grads_a = tf.while_loop(
                lambda k, *_: k < n_blocks, body,
                (tf.constant(0, tf.int32), tf.zeros([], a.dtype), tf.zeros_like(b), grads_a),
                parallel_iterations=1)
            return total, grad_b, tf.reshape(grads_a.concat(), tf.shape(a))

        # The loop's frame costs about as much as the block's arithmetic at batch 4096 on CPU, so a batch whose
        # pairs fit in one block skips it.
        total, grad_b, grad_a = tf.cond(n_blocks <= 1, one_block, blocks)
        if outside_term is not None:
            total += tf.cast(outside_term(a, b), a.dtype)

        def grad(upstream):
            return upstream * grad_a, upstream * grad_b

        return total, grad

    return pair_sum(rows, cols)


def relu_pair_sum(rows: tf.Tensor, cols: tf.Tensor) -> tf.Tensor:
    """``sum_{i, j} max(0, cols_j - rows_i)`` exactly, in O((n_rows + n_cols) log n_cols), without pairs.

    Sorts ``cols``; for each ``rows_i`` the columns above it contribute ``(sum of those cols) - count * rows_i``
    (suffix sums in float64, so the cancellation costs no float32 precision). Not differentiable (it is used as
    the ``outside_term`` of :func:`chunked_pair_sum`, whose gradient comes from the pair loop).
    """
    rows = tf.reshape(rows, [-1])
    cols = tf.reshape(tf.cast(cols, rows.dtype), [-1])
    ordered = tf.sort(cols)
    wide = tf.float64
    suffix = tf.concat([tf.cumsum(tf.cast(ordered, wide), reverse=True), tf.zeros([1], wide)], axis=0)
    first_above = tf.searchsorted(ordered, rows, side="right")  # cols at and after it are > rows_i
    count = tf.cast(tf.size(cols) - tf.cast(first_above, tf.int32), wide)
    return tf.reduce_sum(tf.gather(suffix, first_above) - count * tf.cast(rows, wide))


_LOG_GROUP = 32  # factors per product in the RankNet block: each is in [0.5, 1], so a product is >= 2^-32
_PAD = -3.0e38  # a negative logit that pairs to sigma = 0 exactly (and a log factor of 1)
_OUTER_SPREAD = 150.0  # logits within this range use the outer-product form of sigma (see _rank_net_sides)


def _log_factor_sum(s: tf.Tensor) -> tf.Tensor:
    """``sum log(max(s, 1 - s))`` over an ``[r, n]`` block with ``n`` a multiple of 32: one log per 32 pairs."""
    factors = tf.reshape(tf.maximum(s, 1.0 - s), [tf.shape(s)[0], -1, _LOG_GROUP])
    return tf.reduce_sum(tf.math.log(tf.reduce_prod(factors, axis=-1)))


def _rank_net_sides(center: tf.Tensor, outer: tf.Tensor):
    """RankNet's pair function on a block of positives ``a`` [r] and negatives ``b`` [n] (``n`` a multiple of 32,
    padded with ``_PAD``): ``(sum of softplus(-|d|), sigma(d))`` with ``d = b_j - a_i``.

    ``-log(sigma(z_i - z_j)) = softplus(d) = max(d, 0) + softplus(-|d|)``; the ``max(d, 0)`` part is
    :func:`relu_pair_sum` (outside the pair loop). ``softplus(-|d|) = -log(sigma(|d|))`` and
    ``sigma(|d|) = max(s, 1 - s)`` with ``s = sigma(d)``, the derivative, so each pair costs one ``s``; the logs
    are taken of products of 32 consecutive factors (each in [0.5, 1]: no underflow), one log per 32 pairs.

    ``s`` itself: when all the batch's logits lie within ``_OUTER_SPREAD`` of each other (``outer``), as
    ``1 / (1 + e^(a_i - c) e^(c - b_j))`` with ``c`` the centre of their range: a rank-one product and a
    reciprocal, cheaper on CPU than the broadcast difference and a sigmoid. Both factors stay finite and normal
    (``|z - c| <= 75``); a product that overflows or underflows gives ``s = 0`` or ``1``, the float32 sigmoid's
    values there. Otherwise ``s = sigma(b_j - a_i)``. Either way the absolute error is about float epsilon per
    pair.
    """

    def fn(a, b):
        def by_product():
            x = tf.matmul(tf.exp(a - center)[:, tf.newaxis], tf.exp(center - b)[tf.newaxis, :])
            return tf.math.reciprocal(1.0 + x)

        def by_difference():
            return tf.sigmoid(b[tf.newaxis, :] - a[:, tf.newaxis])

        s = tf.cond(outer, by_product, by_difference)
        return -_log_factor_sum(s), s

    return fn


def _hinge(margin: float) -> PairFn:
    def fn(d):
        # max(0, m - (s_i - s_k)) = max(0, m + d) with d = s_k - s_i; subgradient 0 at the kink.
        t = d + tf.cast(margin, d.dtype)
        return tf.nn.relu(t), tf.cast(t > 0, d.dtype)

    return fn


def _flat(labels: tf.Tensor, logits: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    logits = tf.reshape(tf.convert_to_tensor(logits), [-1])
    return tf.reshape(tf.cast(labels, logits.dtype), [-1]), logits


def rank_net(labels: tf.Tensor, logits: tf.Tensor,
             max_pairs_per_chunk: int = DEFAULT_MAX_PAIRS_PER_CHUNK) -> tf.Tensor:
    """RankNet over all positive x negative pairs of the batch, KDD 2024 Eq. 9 (the ranking half of Eq. 8).

    ```
    L = -1/(N+ N-) * sum_{i in N+} sum_{j in N-} log(sigma(z_i+ - z_j-))
      =  1/(N+ N-) * sum_{i, j} softplus(z_j- - z_i+)
    ```

    Pairs are unweighted (the ``weight`` feature is not used) and the normaliser is the number of pairs, as in the
    paper's code. Gradients (Table 3; Eq. 12 prints 1/N+, the per-negative scale, while the exact gradient of
    Eq. 9 carries its 1/(N+ N-)):
    ``dL/dz_j- = sum_i sigma(z_j- - z_i+) / (N+ N-) > 0`` and ``dL/dz_i+ = -sum_j sigma(z_j- - z_i+) / (N+ N-) < 0``.
    They are computed with the loss, in blocks of positives (:func:`chunked_pair_sum`): the N+ x N- matrix is
    never held at once. Per pair, ``softplus(d) = max(d, 0) + softplus(-|d|)``: the first part is summed over all
    pairs by sorting (:func:`relu_pair_sum`), the second as ``-log(max(s, 1 - s))`` from the same
    ``s = sigma(d)`` as the gradient (stable: the log's argument is in [0.5, 1]; finite for any finite logits;
    see ``_rank_net_sides``).

    Args:
      labels: ``[batch]`` in {0, 1}; labels < 0 are padding and excluded.
      logits: ``[batch]`` logits ``z``.
      max_pairs_per_chunk: pairs per block (memory bound); does not change the result beyond float rounding.

    Returns:
      Scalar loss; 0 (with zero gradient) when the batch has no positive or no negative.
    """
    labels, logits = _flat(labels, logits)
    pos_idx = tf.where(tf.equal(labels, 1.0))[:, 0]
    neg_idx = tf.where(tf.equal(labels, 0.0))[:, 0]
    pos, neg = tf.gather(logits, pos_idx), tf.gather(logits, neg_idx)
    # Negatives padded to a multiple of 32 with a logit whose pairs add exactly 0 (sigma = 0, log factor 1, and
    # max(d, 0) = 0 in relu_pair_sum).
    pad = (-tf.size(neg)) % _LOG_GROUP
    neg_padded = tf.concat([neg, tf.fill([pad], tf.constant(_PAD, logits.dtype))], axis=0)
    both = tf.concat([pos, neg], axis=0)
    high, low = tf.reduce_max(both), tf.reduce_min(both)
    center = tf.stop_gradient(0.5 * (high + low))
    outer = tf.stop_gradient(high - low <= _OUTER_SPREAD)
    total = chunked_pair_sum(pos, neg_padded, _rank_net_sides(center, outer), max_pairs_per_chunk,
                             outside_term=relu_pair_sum, fn_on_sides=True)
    n_pairs = tf.cast(tf.size(pos_idx), logits.dtype) * tf.cast(tf.size(neg_idx), logits.dtype)
    return tf.math.divide_no_nan(total, n_pairs)


def check_space(space: str) -> str:
    """Validates PWiseR's ``space`` argument; returns it."""
    if space not in SPACES:
        raise ValueError(f"`space` must be one of {SPACES}. Received: space={space!r}")
    return space


def check_margin(name: str, value: float) -> float:
    """Validates a margin (``m1``, ``m2``) argument, >= 0; returns it as a float."""
    if not float(value) >= 0.0:
        raise ValueError(f"`{name}` must be >= 0. Received: {name}={value}")
    return float(value)


def pwiser_terms(clicks: tf.Tensor, conversions: tf.Tensor, logits: tf.Tensor, m1: float = 0.1, m2: float = 0.2,
                 space: str = "probability",
                 max_pairs_per_chunk: int = DEFAULT_MAX_PAIRS_PER_CHUNK) -> Tuple[tf.Tensor, tf.Tensor]:
    """The two pairwise terms of PWiseR (Durmus et al., arXiv 2406.02163; papers 002 / 003), in tfrec's reading.

    The summary gives the terms in words only: conversion samples must score above click-only samples by a
    margin ``m1`` and above no-click samples by a margin ``m2``, over pairs inside the batch. tfrec reads this as
    hinge losses averaged over the pairs of each kind:

    ```
    term1 = 1/(|C| |K|) * sum_{i in C} sum_{j in K} max(0, m1 - (s_i - s_j))   # conversion vs click-only
    term2 = 1/(|C| |Z|) * sum_{i in C} sum_{k in Z} max(0, m2 - (s_i - s_k))   # conversion vs no-click
    ```

    with ``C`` the conversions (conversion = 1, whatever the click label says), ``K`` the click-only samples
    (click = 1, conversion = 0), ``Z`` the no-click samples (click = 0, conversion = 0), and ``s`` the score of
    the task being trained:
    its predicted probability ``sigma(z)`` (``space="probability"``, the default) or its logit ``z``
    (``space="logit"``). A term with no pair is 0 (zero gradient). Rows with a negative click or conversion
    label are padding. The subgradient at the hinge's kink is 0. Computed with :func:`chunked_pair_sum`.

    Args:
      clicks: ``[batch]`` click labels in {0, 1}.
      conversions: ``[batch]`` conversion labels in {0, 1}.
      logits: ``[batch]`` logits of the task being trained (CTR or CVR).
      m1: margin of conversions over click-only samples, >= 0.
      m2: margin of conversions over no-click samples, >= 0.
      space: ``"probability"`` or ``"logit"``.
      max_pairs_per_chunk: pairs per block (memory bound).

    Returns:
      ``(term1, term2)``, two scalars.
    """
    check_space(space)
    m1, m2 = check_margin("m1", m1), check_margin("m2", m2)
    clicks, logits = _flat(clicks, logits)
    conversions = tf.reshape(tf.cast(conversions, logits.dtype), [-1])
    valid = tf.logical_and(clicks >= 0, conversions >= 0)
    is_conv = tf.logical_and(valid, tf.equal(conversions, 1.0))
    not_conv = tf.logical_and(valid, tf.equal(conversions, 0.0))
    click_only = tf.logical_and(not_conv, tf.equal(clicks, 1.0))
    no_click = tf.logical_and(not_conv, tf.equal(clicks, 0.0))
    scores = tf.sigmoid(logits) if space == "probability" else logits

    def term(group, margin):
        a, b = tf.boolean_mask(scores, is_conv), tf.boolean_mask(scores, group)
        n_pairs = tf.cast(tf.size(a), logits.dtype) * tf.cast(tf.size(b), logits.dtype)
        return tf.math.divide_no_nan(chunked_pair_sum(a, b, _hinge(margin), max_pairs_per_chunk), n_pairs)

    return term(click_only, m1), term(no_click, m2)


def pwiser(clicks: tf.Tensor, conversions: tf.Tensor, logits: tf.Tensor, m1: float = 0.1, m2: float = 0.2,
           space: str = "probability", max_pairs_per_chunk: int = DEFAULT_MAX_PAIRS_PER_CHUNK) -> tf.Tensor:
    """The PWiseR ranking term ``term1 + term2`` of :func:`pwiser_terms` (without BCE and without lambda)."""
    term1, term2 = pwiser_terms(clicks, conversions, logits, m1, m2, space, max_pairs_per_chunk)
    return term1 + term2


def pwiser_loss(clicks: tf.Tensor, conversions: tf.Tensor, logits: tf.Tensor, task: str = "click",
                weights: Optional[tf.Tensor] = None, lam: float = 0.1, m1: float = 0.1, m2: float = 0.2,
                space: str = "probability", max_pairs_per_chunk: int = DEFAULT_MAX_PAIRS_PER_CHUNK
                ) -> Tuple[tf.Tensor, Tuple[tf.Tensor, tf.Tensor, tf.Tensor]]:
    """The total PWiseR loss ``BCE(task label) + lam * (term1 + term2)``; returns ``(total, (bce, t1, t2))``.

    The BCE is :func:`tfrec.losses.pointwise.weighted_bce` (KDD Eq. 15 convention: ``weights`` multiply the
    positive term, mean over the valid samples) on the click labels (``task="click"``) or the conversion labels
    (``task="conversion"``), over every non-padding sample of the batch; the terms are :func:`pwiser_terms`.
    Rows where either label is negative are padding, for the BCE as for the terms.
    """
    if task not in ("click", "conversion"):
        raise ValueError(f"`task` must be 'click' or 'conversion'. Received: task={task!r}")
    if not float(lam) >= 0.0:
        raise ValueError(f"`lam` must be >= 0. Received: lam={lam}")
    clicks, logits = _flat(clicks, logits)
    conversions = tf.reshape(tf.cast(conversions, logits.dtype), [-1])
    # A row is padding when either label is; BCE must skip it too.
    pad = tf.logical_or(clicks < 0, conversions < 0)
    task_labels = tf.where(pad, -tf.ones_like(clicks), clicks if task == "click" else conversions)
    bce = weighted_bce(task_labels, logits, weights)
    term1, term2 = pwiser_terms(clicks, conversions, logits, m1, m2, space, max_pairs_per_chunk)
    return bce + float(lam) * (term1 + term2), (bce, term1, term2)
