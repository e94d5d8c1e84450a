"""HCCP's list-wise in-batch negatives N4 (section 3.2.3), built inside the model from other requests' impressions.

The paper's steps, for a batch of ``|U|`` requests: (1)-(3) score every user embedding against the item
embeddings of the batch's impressions ``R^t`` (the paper restricts the cross product to the exposure sequence to
save computation), giving ``N = U I^T`` of shape ``[|U|, |U| |R^t|]``; (4) for user ``u``, mask the scores of the
items that belong to ``u``'s own collections ``R^t``, ``B^r``, ``B^p`` and sample the in-batch negatives ``B^i``
from the rest at a fixed rate (0.05 in section 4.1.4).

tfrec's reading:

* a column is a candidate for row ``u`` when it is an impression (``sample_type`` N1, not padding) of another
  request of the batch, and its item is none of the items of ``u``'s own list (compared by a 62-bit hash of the
  item id; every slot of the list counts, N5 included, so an in-batch negative is never a copy of one of the
  request's own samples);
* each candidate is kept independently with probability ``rate`` (Bernoulli), so a row gets on average
  ``rate * (number of candidates)`` negatives;
* the kept columns of each row are compacted to the front of ``[B, K4]`` slots (``K4`` = the largest count of the
  replica's batch), so the contrastive losses see them as extra easy-negative slots of the row (the layout of
  :mod:`tfrec.losses.infonce`), with a mask for the unused slots.

Under a distribution strategy each replica builds its negatives from its own slice of the batch (the losses pair
within the replica), which is the in-batch sampling of a batch of ``B / R`` requests.
"""

from __future__ import annotations

from typing import Optional, Tuple

import tensorflow as tf

from tfrec.features import SAMPLE_N1

HASH_BUCKETS = 2 ** 62


def item_keys(item_ids: tf.Tensor) -> tf.Tensor:
    """A 62-bit hash of each item id (``[...]`` string -> int64), for the own-item comparison."""
    return tf.strings.to_hash_bucket_fast(item_ids, HASH_BUCKETS)


def candidate_mask(sample_type: tf.Tensor, keys: tf.Tensor, valid: tf.Tensor) -> tf.Tensor:
    """``[B, B*L]`` bool: column ``c = b' * L + l`` is an in-batch candidate for row ``b``.

    Args:
      sample_type: ``[B, L]`` int sample types (N1 = impressions).
      keys: ``[B, L]`` int64 item keys (:func:`item_keys`).
      valid: ``[B, L]`` bool, False on padded slots.

    Returns:
      True where the column is a valid impression of another request whose item is not in row ``b``'s list.
    """
    b = tf.shape(keys)[0]
    n = tf.size(keys)
    flat_keys = tf.reshape(keys, [n])
    impression = tf.reshape(tf.logical_and(valid, tf.equal(tf.cast(sample_type, tf.int32), SAMPLE_N1)), [n])
    owner = tf.repeat(tf.range(b), tf.shape(keys)[1])  # [B*L]: the request each column belongs to
    own_request = tf.equal(tf.range(b)[:, None], owner[None, :])
    # [B, L, B*L] comparisons (the list's slots against every column), reduced over the list.
    same_item = tf.reduce_any(tf.logical_and(tf.equal(keys[:, :, None], flat_keys[None, None, :]),
                                             valid[:, :, None]), axis=1)
    return tf.logical_and(impression[None, :], tf.logical_not(tf.logical_or(own_request, same_item)))


def sample_in_batch(candidates: tf.Tensor, rate: float, seed: Optional[tf.Tensor] = None) -> tf.Tensor:
    """Keeps each candidate with probability ``rate``: ``[B, C]`` bool -> ``[B, C]`` bool.

    ``seed`` (an int ``[2]`` tensor) makes the draw stateless and reproducible; without it the op draws from
    TensorFlow's global generator (different draws every step and on every replica)."""
    shape = tf.shape(candidates)
    if seed is not None:
        u = tf.random.stateless_uniform(shape, seed=seed)
    else:
        u = tf.random.uniform(shape)
    return tf.logical_and(candidates, u < rate)


def compact(selected: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    """The kept columns of each row, moved to the front.

    Args:
      selected: ``[B, C]`` bool.

    Returns:
      ``(columns, mask)``: ``[B, K4]`` int32 column indices and their ``[B, K4]`` bool mask, ``K4`` the largest
      number of kept columns in a row (0 when none is kept); unused slots have mask False.
    """
    counts = tf.reduce_sum(tf.cast(selected, tf.int32), axis=1)
    k4 = tf.reduce_max(tf.concat([counts, [0]], axis=0))
    order = tf.argsort(tf.cast(selected, tf.int32), axis=1, direction="DESCENDING", stable=True)[:, :k4]
    return order, tf.gather(selected, order, batch_dims=1)


def in_batch_negatives(user: tf.Tensor, items: tf.Tensor, sample_type: tf.Tensor, keys: tf.Tensor,
                       valid: tf.Tensor, rate: float, seed: Optional[tf.Tensor] = None,
                       selection: Optional[Tuple[tf.Tensor, tf.Tensor]] = None):
    """N4 dot products of each user with its sampled in-batch negatives.

    Args:
      user: ``[B, d]`` user embeddings (one task's).
      items: ``[B, L, d]`` item embeddings of the batch's lists.
      sample_type / keys / valid: ``[B, L]``, see :func:`candidate_mask`.
      rate: sampling rate of the candidates (HCCP: 0.05).
      seed: optional stateless seed (see :func:`sample_in_batch`).
      selection: a ``(columns, mask)`` from :func:`select_in_batch` to reuse (one draw shared by every task).

    Returns:
      ``(logits, item_norm, mask, selection)``: ``[B, K4]`` dot products ``u . i``, item norms, the slot mask and
      the selection used.
    """
    if selection is None:
        selection = select_in_batch(sample_type, keys, valid, rate, seed)
    columns, mask = selection
    d = tf.shape(items)[-1]
    gathered = tf.gather(tf.reshape(items, [-1, d]), columns)  # [B, K4, d]
    logits = tf.einsum("bd,bkd->bk", user, gathered)
    return logits, tf.norm(gathered, axis=-1), mask, selection


def select_in_batch(sample_type: tf.Tensor, keys: tf.Tensor, valid: tf.Tensor, rate: float,
                    seed: Optional[tf.Tensor] = None) -> Tuple[tf.Tensor, tf.Tensor]:
    """:func:`candidate_mask`, :func:`sample_in_batch` and :func:`compact` in one call: ``(columns, mask)``."""
    return compact(sample_in_batch(candidate_mask(sample_type, keys, valid), rate, seed))
