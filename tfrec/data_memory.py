"""Training batches served from memory: a train split small enough is parsed once and shuffled by index.

The streamed reader (:func:`tfrec.data.make_dataset`) parses every ``tf.Example`` again in every epoch and shuffles
serialized records through a buffer that holds up to ``data.shuffle_buffer`` of them. When the split fits in
``data.in_memory_max_mb``, this module reads its records once, parses them into one ``[rows]`` tensor per feature
(and the label and weight), and serves each batch as a ``tf.gather`` of those tensors at indices:

- each pass over the split (an epoch) is a permutation of the row indices, drawn with
  ``tf.random.experimental.stateless_shuffle`` at the seed ``(seed, k)``, ``k`` the pass's key; the keys are the
  stream of ``tf.data.Dataset.random(seed)``, so the same seed gives the same orders, and every pass (and every new
  iteration of the dataset) another one. Without shuffling (evaluation, or ``shuffle_buffer`` 0) the order is the
  streamed reader's read order;
- the passes are concatenated and then batched, as the streamed reader repeats and then batches, so with
  ``repeat`` a batch may hold the end of one pass and the start of the next, and ``drop_remainder`` drops the last
  partial batch when training;
- negative sampling keeps and drops the same records as the streamed reader (the filter runs on the serialized
  records before they are parsed), once for all passes.

The size of a split is estimated before it is read, from its row count (``stats.json``) and its parse spec:
:func:`estimated_bytes`.

A model whose preprocessing is inside it (:class:`tfrec.layers.FeatureEmbedding`: vocabulary lookups, numeric
transforms) can have the split's features encoded once after loading (:func:`encoded`): the batches then carry
row ids and transformed values, which the model's ``call`` takes as they are, instead of raw values looked up and
transformed again in every step.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import tensorflow as tf

# A parsed string value: a tf.tstring (24 bytes; values up to 22 bytes held inline) and room for a longer one.
BYTES_PER_STRING = 32
# Records parsed per tf.io.parse_example call while the split is loaded.
LOAD_CHUNK = 65536


def estimated_bytes(spec: dict, rows: int) -> Optional[int]:
    """The memory ``rows`` parsed rows of ``spec`` take in memory, or None when it cannot be told.

    Per row: the size of each fixed-length feature's dtype times its values (``BYTES_PER_STRING`` for a string
    value), plus 8 bytes of the pass's row index. A spec with a feature of variable length (sparse, ragged) gives
    None: such a split is always streamed.
    """
    per_row = 8
    for feature in spec.values():
        if not isinstance(feature, tf.io.FixedLenFeature):
            return None
        values = int(np.prod(feature.shape)) if feature.shape else 1
        size = BYTES_PER_STRING if feature.dtype == tf.string else tf.as_dtype(feature.dtype).size
        per_row += values * size
    return int(rows) * per_row


def fits(spec: dict, rows: int, max_bytes: int) -> bool:
    """Whether a split of ``rows`` rows of ``spec`` is served from memory under a budget of ``max_bytes``.

    ``max_bytes`` 0 (or an unknown row count, 0) always streams.
    """
    if max_bytes <= 0 or rows <= 0:
        return False
    size = estimated_bytes(spec, rows)
    return size is not None and size <= max_bytes


def load(records: tf.data.Dataset, parse: Callable, chunk: int = LOAD_CHUNK):
    """Parses every serialized record of ``records`` with ``parse`` (a ``[batch]`` string tensor ->
    ``(features, label, weight)``) into one structure of tensors whose first dimension is the row, in read order.

    Returns None when ``records`` is empty.
    """
    parts = list(records.batch(chunk).map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True))
    if not parts:
        return None
    flat = [tf.nest.flatten(p) for p in parts]
    columns = []
    for i in range(len(flat[0])):
        columns.append(tf.concat([f[i] for f in flat], axis=0))
        for f in flat:  # each chunk's copy is freed as soon as its column is whole
            f[i] = None
    return tf.nest.pack_sequence_as(parts[0], columns)


def encoded(data, encode: Callable, chunk: int = LOAD_CHUNK):
    """``data`` (from :func:`load`: ``(features, label, weight)``) with its features replaced by
    ``encode(features)``, computed ``chunk`` rows at a time, once for the split."""
    features, *rest = data
    rows = int(tf.nest.flatten(features)[0].shape[0])
    parts = [encode({k: v[start:start + chunk] for k, v in features.items()}) for start in range(0, rows, chunk)]
    return (tf.nest.map_structure(lambda *cols: tf.concat(cols, axis=0), *parts), *rest)


def batches(data, batch_size: int, drop_remainder: bool, shuffle: bool, seed: Optional[int],
            repeat: bool) -> tf.data.Dataset:
    """Batches of the in-memory ``data`` (from :func:`load`): ``(features, label, weight)`` of ``batch_size`` rows.

    Args:
      data: the structure of ``[rows, ...]`` tensors.
      batch_size: rows per batch.
      drop_remainder: drop the last partial batch.
      shuffle: each pass is a permutation drawn at the stateless seed ``(seed, pass key)``; otherwise the rows
        come in ``data``'s order.
      seed: the run's seed (None: 0).
      repeat: pass after pass, forever; otherwise one pass per iteration of the dataset.
    """
    rows = int(tf.nest.flatten(data)[0].shape[0])
    base = 0 if seed is None else int(seed)
    keys = tf.data.Dataset.random(seed=base, rerandomize_each_iteration=True)
    if not repeat:
        keys = keys.take(1)

    def one_pass(key):
        index = tf.range(rows, dtype=tf.int64)
        if shuffle:
            index = tf.random.experimental.stateless_shuffle(index, seed=tf.stack([tf.constant(base, tf.int64), key]))
        return tf.data.Dataset.from_tensor_slices(index)

    def gather(index):
        return tf.nest.map_structure(lambda column: tf.gather(column, index), data)

    ds = keys.flat_map(one_pass).batch(batch_size, drop_remainder=drop_remainder)
    return ds.map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
