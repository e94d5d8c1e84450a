"""Gradient diagnostics of a training step (KDD 2024, Lin et al., Fig. 2, Fig. 3 and Fig. 9).

The paper explains the gain of ranking losses under sparse positives by the gradients they produce: with BCE the
gradient of a negative sample's logit is ``p_j / N`` (Eq. 10), which vanishes when positives are rare, and a
combined classification-ranking loss enlarges it (Eq. 12-14). It shows the per-batch gradient magnitude of the
negative logits over the first epoch (Fig. 2), the gradient norms of the bottom DNN layer and of the cross
network of DCN V2 (Fig. 3), and the distribution of the negative logits' gradients (Fig. 9).

Per training batch, tfrec records (the names are the keys of the training logs):

* ``grad_neg_mean``, ``grad_neg_p10``, ``grad_neg_p50``, ``grad_neg_p90``: the mean and the 10/50/90th
  percentiles of ``|dL/dz_i|`` over the batch's negative samples (label 0), where ``z`` is the model's ``logit``
  output and ``L`` the loss the step optimises (the global-batch loss: tfrec models divide each replica's loss
  by the number of replicas, so the gradient a replica computes for its own logits is the gradient of the
  global loss). ``grad_pos_*``: the same over the positives (label > 0). Padding (label < 0) is in neither.
  A logit with more than one entry per sample (``[batch, k]``, e.g. the ``logits`` of JRC's two-logit head, which
  the model's ``train_step`` measures instead of the derived ``logit`` when it returns them) contributes the L2
  norm of its row, and each column ``j`` is also reported alone as ``grad_neg_z<j>_*`` / ``grad_pos_z<j>_*``
  (JRC: ``z0`` non-click, ``z1`` click, the two curves of Fig. 2).
  Percentiles are exact, with NumPy's default (``method="linear"``) interpolation:
  ``x_(lo) + (h - lo) * (x_(lo+1) - x_(lo))`` with ``h = (n - 1) * (q / 100)`` and ``lo = floor(h)`` over the
  ascending sorted values; a class absent from the batch gives NaN.
* ``grad_norm_<name>``: the L2 norm of the gradient of each named parameter group the model reports
  (``model.diagnostic_variables()``; DCN V2: ``dnn0`` the first DNN kernel, ``cross0``, ``cross1``, ... the
  cross layers' kernels), and ``grad_norm_global`` over all trainable variables. These are norms of the
  gradient the optimizer applies, i.e. summed over replicas and before clipping. A sparse (``IndexedSlices``)
  embedding gradient counts as its dense equivalent (repeated rows are summed before squaring; TensorFlow's
  ``clip_by_global_norm`` squares the rows without merging them, so its norm can differ from this one).

* ``grad_neg_hist00`` .. ``grad_neg_hist39``: the histogram of ``|dL/dz_i|`` over the batch's negatives (the
  per-sample magnitude above), counts in :data:`HIST_BINS` = 40 bins of equal width in ``log10`` between
  :data:`HIST_LOW` = 1e-10 and :data:`HIST_HIGH` = 0.1 (:func:`log_histogram`; :func:`histogram_edges` gives the
  edges). The edges are fixed, so the histograms of batches, epochs and runs add up. A value below the first edge
  (a zero gradient included) counts in the first bin, one above the last edge in the last.

Reading of the figures: Fig. 2 is the ``grad_neg_mean`` series; Fig. 9 ("distribution of gradient norms for
negative samples", frequency per log-spaced bucket) is the ``grad_neg_hist*`` counts summed over batches and
normalised to frequencies; Fig. 3's "90th percentile and average" of the layer gradient norms are statistics over
training batches, taken from the per-batch ``grad_norm_*`` series that the ``GradientDiagnostics`` callback
writes (``tfrec.experiments.kdd.plots``).

Under a distribution strategy the per-sample values are all-gathered across replicas (percentiles and means are
over the global batch) and the norms are taken of the all-reduced gradient, so a 2-replica step reports the same
values as a 1-device step on the same global batch.
"""

from __future__ import annotations

import math
from typing import Dict, Mapping, Optional, Sequence, Tuple

import tensorflow as tf
import tf_keras as keras

DEFAULT_PERCENTILES: Tuple[int, ...] = (10, 50, 90)
#: The negative-logit gradient histogram (Fig. 9): ``HIST_BINS`` bins of equal log10 width in [HIST_LOW, HIST_HIGH].
HIST_BINS = 40
HIST_LOW = 1e-10
HIST_HIGH = 0.1
HIST_NAMES: Tuple[str, ...] = tuple(f"grad_neg_hist{i:02d}" for i in range(HIST_BINS))


def histogram_edges(low: float = HIST_LOW, high: float = HIST_HIGH, bins: int = HIST_BINS):
    """The ``bins + 1`` bin edges of :func:`log_histogram` (NumPy, ``np.logspace``)."""
    import numpy as np

    return np.logspace(np.log10(low), np.log10(high), bins + 1)


# ------------------------------------------------------------------------------------------- statistics


def masked_percentiles(values: tf.Tensor, mask: tf.Tensor,
                       percentiles: Sequence[float] = DEFAULT_PERCENTILES) -> tf.Tensor:
    """Exact percentiles of ``values[mask]`` with NumPy's default linear interpolation.

    Args:
      values: ``[n]`` floats.
      mask: ``[n]`` booleans; only the values where it is true count.
      percentiles: percentiles in ``[0, 100]``.

    Returns:
      ``[len(percentiles)]`` float32, equal to ``np.percentile(values[mask], percentiles)`` (computed in float64);
      NaN where the mask selects nothing.
    """
    qs = [float(q) for q in percentiles]
    if any(not 0.0 <= q <= 100.0 for q in qs):
        raise ValueError(f"`percentiles` must be in [0, 100]. Received: percentiles={list(percentiles)}")
    v = tf.cast(tf.reshape(values, [-1]), tf.float64)
    m = tf.reshape(tf.cast(mask, tf.bool), [-1])
    inf = tf.constant(float("inf"), tf.float64)
    # Masked-out values sort to the end; one extra +inf keeps the gathers valid on an empty input.
    x = tf.concat([tf.sort(tf.where(m, v, inf)), [inf]], axis=0)
    n = tf.reduce_sum(tf.cast(m, tf.int64))
    h = tf.cast(tf.maximum(n - 1, 0), tf.float64) * (tf.constant(qs, tf.float64) / 100.0)  # NumPy's order
    lo = tf.floor(h)
    lo_i = tf.cast(lo, tf.int64)
    hi_i = tf.minimum(lo_i + 1, tf.maximum(n - 1, 0))
    a, b = tf.gather(x, lo_i), tf.gather(x, hi_i)
    t = h - lo
    # NumPy's _lerp: a + (b - a) t, computed from the upper end when t >= 0.5 (same rounding as NumPy).
    out = tf.where(t >= 0.5, b - (b - a) * (1.0 - t), a + (b - a) * t)
    out = tf.where(tf.equal(a, b), a, out)  # b - a would be inf - inf when both are the +inf pad
    return tf.cast(tf.where(n > 0, out, tf.fill(tf.shape(out), tf.constant(float("nan"), tf.float64))),
                   tf.float32)


def masked_mean(values: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Mean of ``values[mask]`` (float64 accumulation, float32 result); NaN where the mask selects nothing."""
    v = tf.cast(tf.reshape(values, [-1]), tf.float64)
    m = tf.cast(tf.reshape(mask, [-1]), tf.float64)
    n = tf.reduce_sum(m)
    total = tf.reduce_sum(tf.where(m > 0, v, tf.zeros_like(v)))
    return tf.cast(tf.where(n > 0, total / tf.maximum(n, 1.0), tf.constant(float("nan"), tf.float64)), tf.float32)


def log_histogram(values: tf.Tensor, mask: tf.Tensor, low: float = HIST_LOW, high: float = HIST_HIGH,
                  bins: int = HIST_BINS) -> tf.Tensor:
    """Counts of ``values[mask]`` in ``bins`` bins of equal width in ``log10`` between ``low`` and ``high``.

    Bin ``k`` holds ``edges[k] <= v < edges[k + 1]`` (``edges`` = :func:`histogram_edges`), the index computed as
    ``floor(bins * (log10 v - log10 low) / (log10 high - log10 low))`` in float64; values below ``low`` (zero
    included) go to bin 0, values at or above ``high`` to the last bin.

    Returns:
      ``[bins]`` float32 counts.
    """
    if not 0.0 < low < high or bins < 1:
        raise ValueError(f"need 0 < low < high and bins >= 1. Received: low={low}, high={high}, bins={bins}")
    v = tf.cast(tf.reshape(values, [-1]), tf.float64)
    m = tf.cast(tf.reshape(mask, [-1]), tf.float64)
    lo, hi = math.log10(low), math.log10(high)
    pos = (tf.math.log(tf.maximum(v, low)) / math.log(10.0) - lo) / (hi - lo) * bins
    idx = tf.cast(tf.clip_by_value(tf.floor(pos), 0.0, bins - 1.0), tf.int32)
    return tf.cast(tf.math.unsorted_segment_sum(m, idx, bins), tf.float32)


def negative_histogram(grad_logit: tf.Tensor, labels: tf.Tensor) -> Dict[str, tf.Tensor]:
    """``grad_neg_hist<kk>``: :func:`log_histogram` of the per-sample ``|dL/dz_i|`` over the negatives (label 0)."""
    y = tf.reshape(tf.cast(labels, tf.float32), [-1])
    counts = log_histogram(per_sample_magnitude(grad_logit), tf.equal(y, 0.0))
    return {name: counts[i] for i, name in enumerate(HIST_NAMES)}


def per_sample_magnitude(grad: tf.Tensor) -> tf.Tensor:
    """``|g_i|`` for a ``[batch]`` gradient; the L2 norm of each sample's row for ``[batch, ...]``."""
    grad = tf.convert_to_tensor(grad)
    if grad.shape.rank == 1:
        return tf.abs(grad)
    flat = tf.reshape(grad, [tf.shape(grad)[0], -1])
    return tf.sqrt(tf.reduce_sum(tf.square(flat), axis=1))


def _squared_norm(grad) -> tf.Tensor:
    if grad is None:
        return tf.constant(0.0, tf.float64)
    if isinstance(grad, tf.IndexedSlices):
        unique, idx = tf.unique(tf.reshape(grad.indices, [-1]))
        dense_rows = tf.math.unsorted_segment_sum(grad.values, idx, tf.shape(unique)[0])
        return tf.reduce_sum(tf.square(tf.cast(dense_rows, tf.float64)))
    return tf.reduce_sum(tf.square(tf.cast(grad, tf.float64)))


def gradient_norm(grads) -> tf.Tensor:
    """L2 norm (float32 result, float64 accumulation) of one gradient or of a list of gradients taken together.

    ``None`` entries count as zero; an ``IndexedSlices`` gradient counts as its dense equivalent (rows with the
    same index are summed first).
    """
    if grads is None or isinstance(grads, (tf.Tensor, tf.IndexedSlices, tf.Variable)):
        grads = [grads]
    total = tf.add_n([_squared_norm(g) for g in grads]) if grads else tf.constant(0.0, tf.float64)
    return tf.cast(tf.sqrt(total), tf.float32)


def logit_gradient_stats(grad_logit: tf.Tensor, labels: tf.Tensor,
                         percentiles: Sequence[float] = DEFAULT_PERCENTILES) -> Dict[str, tf.Tensor]:
    """``grad_{neg,pos}_{mean,p<q>}`` of the per-sample magnitudes ``|dL/dz_i|``.

    Negatives are labels equal to 0, positives labels > 0; labels < 0 (padding) are in neither. For a
    ``[batch, k]`` gradient (k > 1, e.g. JRC's (non-click, click) logits) the magnitude is the L2 norm of each
    sample's row, and each column ``j`` is also reported on its own as ``grad_{neg,pos}_z<j>_{mean,p<q>}``.
    """
    grad_logit = tf.convert_to_tensor(grad_logit)
    y = tf.reshape(tf.cast(labels, tf.float32), [-1])
    series = [("", per_sample_magnitude(grad_logit))]
    if grad_logit.shape.rank is not None and grad_logit.shape.rank > 1:
        flat = tf.reshape(grad_logit, [tf.shape(grad_logit)[0], -1])
        k = flat.shape[1]
        if k is None:
            raise ValueError("the logit's trailing dimensions must be static for the gradient diagnostics")
        if k > 1:
            series += [(f"z{j}_", tf.abs(flat[:, j])) for j in range(k)]
    out: Dict[str, tf.Tensor] = {}
    for prefix, mag in series:
        for kind, mask in (("neg", tf.equal(y, 0.0)), ("pos", y > 0.0)):
            out[f"grad_{kind}_{prefix}mean"] = masked_mean(mag, mask)
            values = masked_percentiles(mag, mask, percentiles)
            for i, q in enumerate(percentiles):
                out[f"grad_{kind}_{prefix}p{_q_name(q)}"] = values[i]
    return out


def _q_name(q: float) -> str:
    return str(int(q)) if float(q).is_integer() else str(q).replace(".", "_")


# ------------------------------------------------------------------------------------------- replicas


def _num_replicas() -> int:
    ctx = tf.distribute.get_replica_context()
    return 1 if ctx is None else int(ctx.num_replicas_in_sync)


def gather_replicas(tensors: Sequence[tf.Tensor]) -> Tuple[tf.Tensor, ...]:
    """All-gathers ``tensors`` along axis 0 across the replicas in sync (replica order); as is with one."""
    tensors = tuple(tensors)
    if _num_replicas() == 1:
        return tensors
    return tuple(tf.distribute.get_replica_context().all_gather(list(tensors), axis=0))


def same_on_all_replicas(values: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """Makes values that every replica computed identically one (non per-replica) value.

    Keras reduces per-replica logs with ``sum`` under MirroredStrategy, which would multiply replica-identical
    values by the number of replicas; a cross-replica mean in a ``merge_call`` (the way Keras' metric results are
    made) hands Keras a single tensor instead.
    """
    if _num_replicas() == 1 or not values:
        return values
    names = list(values)
    stacked = tf.stack([tf.cast(values[k], tf.float32) for k in names])

    def merge(strategy, v):
        mean = strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
        return {k: mean[i] for i, k in enumerate(names)}

    # The tensors made inside the merge function are the very objects every replica returns (a slice taken in
    # each replica would be a per-replica value again).
    return tf.distribute.get_replica_context().merge_call(merge, args=(stacked,))


# ------------------------------------------------------------------------------------------- the step


def _as_tuple(variables) -> Tuple[tf.Variable, ...]:
    if isinstance(variables, (list, tuple)):
        return tuple(variables)
    return (variables,)


def diagnostic_step(optimizer, loss: tf.Tensor, tape: tf.GradientTape, variables: Sequence[tf.Variable],
                    logit: tf.Tensor, labels: tf.Tensor,
                    named_variables: Optional[Mapping[str, object]] = None,
                    percentiles: Sequence[float] = DEFAULT_PERCENTILES) -> Dict[str, tf.Tensor]:
    """One optimizer step on ``loss`` that also returns the gradient diagnostics (see the module docstring).

    Call in replica context, in place of ``optimizer.minimize(loss, variables, tape=tape)``. One backward pass
    gives the gradients of ``logit`` and of ``variables``. With a Keras (non-legacy) optimizer the gradients are
    aggregated across replicas once, by the optimizer's own ``aggregate_gradients``, measured, and applied with
    ``skip_gradients_aggregation=True`` (so the update is the one ``minimize`` makes); with another optimizer they
    are all-reduced separately for the measurement and the optimizer aggregates its own copy.

    Args:
      optimizer: the model's optimizer.
      loss: the scalar the replica optimises (already divided by the number of replicas).
      tape: the tape that recorded the forward pass and the loss.
      variables: the trainable variables.
      logit: the logit output ``z`` (``[batch]`` or ``[batch, k]``).
      labels: the labels of the replica's batch.
      named_variables: name -> variable (or tuple of variables, normed together) for ``grad_norm_<name>``.
      percentiles: percentiles of ``|dL/dz|`` to report.

    Returns:
      name -> float32 scalar (identical, non per-replica values under a strategy).
    """
    if isinstance(optimizer, keras.mixed_precision.LossScaleOptimizer):
        raise ValueError("gradient diagnostics do not support a LossScaleOptimizer (mixed precision): the step "
                         "would skip its loss scaling")
    variables = list(variables)
    grads = tape.gradient(loss, [logit] + variables)
    grad_logit, grads = grads[0], list(grads[1:])
    if grad_logit is None:  # the loss does not depend on the logit
        grad_logit = tf.zeros_like(logit)
    grads_and_vars = list(zip(grads, variables))
    replicas = _num_replicas()
    aggregate = getattr(optimizer, "aggregate_gradients", None)
    if callable(aggregate):
        reduced = [g for g, _ in aggregate(grads_and_vars)]
        optimizer.apply_gradients(list(zip(reduced, variables)), skip_gradients_aggregation=True)
    else:
        reduced = grads
        if replicas > 1:
            present = [i for i, g in enumerate(grads) if g is not None]
            summed = tf.distribute.get_replica_context().all_reduce(
                tf.distribute.ReduceOp.SUM, [grads[i] for i in present]) if present else []
            reduced = [None] * len(grads)
            for i, g in zip(present, summed):
                reduced[i] = g
        optimizer.apply_gradients(grads_and_vars)

    index = {id(v): i for i, v in enumerate(variables)}
    out: Dict[str, tf.Tensor] = {}
    if grad_logit.shape.rank is not None and grad_logit.shape.rank > 1:
        grad_logit = tf.reshape(grad_logit, [tf.shape(grad_logit)[0], -1])
    grad_logit, y = gather_replicas([grad_logit, tf.reshape(tf.cast(labels, tf.float32), [-1])])
    out.update(logit_gradient_stats(grad_logit, y, percentiles))
    out.update(negative_histogram(grad_logit, y))
    for name, group in (named_variables or {}).items():
        group_grads = []
        for v in _as_tuple(group):
            if id(v) not in index:
                raise ValueError(f"diagnostic variable {name!r} ({v.name}) is not a trainable variable of the "
                                 "model")
            group_grads.append(reduced[index[id(v)]])
        out[f"grad_norm_{name}"] = gradient_norm(group_grads)
    out["grad_norm_global"] = gradient_norm(reduced)
    return same_on_all_replicas(out)


def diagnostic_names(named_variables: Sequence[str] = (), percentiles: Sequence[float] = DEFAULT_PERCENTILES,
                     logit_columns: int = 1) -> Tuple[str, ...]:
    """The log keys :func:`diagnostic_step` returns, in order (``logit_columns``: ``k`` of a ``[batch, k]``
    logit)."""
    names = []
    prefixes = [""] + ([f"z{j}_" for j in range(logit_columns)] if logit_columns > 1 else [])
    for prefix in prefixes:
        for kind in ("neg", "pos"):
            names.append(f"grad_{kind}_{prefix}mean")
            names.extend(f"grad_{kind}_{prefix}p{_q_name(q)}" for q in percentiles)
    names.extend(HIST_NAMES)
    names.extend(f"grad_norm_{n}" for n in named_variables)
    names.append("grad_norm_global")
    return tuple(names)
