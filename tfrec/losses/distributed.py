"""How in-batch (pairwise and list-wise) losses see the batch under a distribution strategy.

Keras runs ``compute_loss`` once per replica on the replica's slice of the global batch, and tfrec's models divide
each replica's loss by the number of replicas ``R`` before the gradients are summed across replicas. A point-wise
loss that averages over its slice therefore optimises exactly the global-batch loss. An in-batch loss does not:
its pairs or lists only span what the replica sees. tfrec's pairwise and list-wise losses take ``pairing``:

* ``"replica"``: pairs (lists, softmax denominators) are formed within each replica's slice and normalised by the
  slice's own counts. Cheapest; with ``R`` replicas it optimises the mean of ``R`` slice losses, which is not the
  global-batch loss (fewer pairs, different normaliser).
* ``"global"``: every replica all-gathers the tensors the loss needs (logits, labels, weights, embeddings)
  across replicas, so every replica computes the loss of the whole global batch ``L_g``. The gather's gradient
  sums the incoming gradients of all replicas and hands each replica its own rows (TensorFlow's
  ``ReplicaContext.all_gather``), so each replica's logits receive ``R * dL_g/dz``; the model's division by ``R``
  makes the summed parameter gradient exactly ``dL_g/dtheta``. A 2-replica step then equals the 1-device step
  with the same global batch (tested in ``tests/tfrec/losses/test_losses_distribution.py``).

Outside a replica context (eager calls, the default strategy, or one replica) both modes compute on the batch as
given.

A point-wise mean over a data-dependent subset of rows (the click-space CVR BCE: a mean over the clicked rows)
has a different count on each replica, so the mean of the replicas' means is not the global mean.
:func:`global_mean` divides each replica's sum by the global count instead (one scalar all-reduce).
"""

from __future__ import annotations

from typing import Sequence, Tuple

import tensorflow as tf

PAIRINGS = ("replica", "global")


def check_pairing(pairing: str) -> str:
    """Validates a ``pairing`` argument; returns it."""
    if pairing not in PAIRINGS:
        raise ValueError(f"`pairing` must be one of {PAIRINGS}. Received: pairing={pairing!r}")
    return pairing


def num_replicas() -> int:
    """The number of replicas the current replica context synchronises with (1 outside a strategy)."""
    ctx = tf.distribute.get_replica_context()
    return 1 if ctx is None else int(ctx.num_replicas_in_sync)


def gather(tensors: Sequence[tf.Tensor], pairing: str) -> Tuple[tf.Tensor, ...]:
    """The tensors of the batch an in-batch loss pairs over: the replica's own (``"replica"``) or all replicas'
    rows concatenated in replica order along axis 0 (``"global"``); differentiable.

    Non-float tensors are gathered as they are (they carry no gradient). ``None`` entries pass through.
    """
    check_pairing(pairing)
    tensors = tuple(tensors)
    ctx = tf.distribute.get_replica_context()
    if pairing == "replica" or ctx is None or ctx.num_replicas_in_sync == 1:
        return tensors
    # One all-gather per tensor: TensorFlow 2.15's gradient of a multi-tensor ``all_gather`` packs the incoming
    # gradients into one tensor (``array_ops.identity(grads)``) and fails when their shapes differ ([b] labels
    # beside [b, 2] logits or [b, d] embeddings).
    return tuple(None if t is None else ctx.all_gather(t, axis=0) for t in tensors)


def global_mean(total: tf.Tensor, count: tf.Tensor, weight: tf.Tensor) -> tf.Tensor:
    """A replica's share of the global-batch mean ``sum_r total_r / sum_r count_r``.

    The gradient is that of ``R * total / sum_r count_r``: after the model's division by ``R`` and the summing of
    the replicas' gradients it is exactly the gradient of the global mean, whatever the replicas' counts. The
    value is ``total * sum_r weight_r / (sum_r count_r * weight)``, so that the weighted mean of the replicas'
    values with weights ``weight_r`` (the weighting of the models' loss trackers, the replica's number of valid
    samples) is the global mean too, also with an empty replica. The two agree when the replicas hold equal
    slices (``weight_r = sum_r weight_r / R``). Outside a replica context or with one replica:
    ``total / count`` (0 for ``count == 0``).

    Args:
      total: scalar, the replica's sum of per-example losses (differentiable).
      count: scalar, the replica's number of rows in the mean (no gradient).
      weight: scalar, the replica's tracker weight (no gradient).

    Returns:
      Scalar; 0 when no replica has a row in the mean.
    """
    ctx = tf.distribute.get_replica_context()
    count = tf.stop_gradient(tf.cast(count, total.dtype))
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return tf.math.divide_no_nan(total, count)
    weight = tf.stop_gradient(tf.cast(weight, total.dtype))
    sums = ctx.all_reduce(tf.distribute.ReduceOp.SUM, tf.stack([count, weight]))
    g_count, g_weight = tf.stop_gradient(sums[0]), tf.stop_gradient(sums[1])
    for_grad = tf.math.divide_no_nan(float(ctx.num_replicas_in_sync) * total, g_count)
    shown = tf.math.divide_no_nan(total * g_weight, g_count * weight)
    return for_grad + tf.stop_gradient(shown - for_grad)
