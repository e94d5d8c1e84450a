"""tf.data reader of the list-wise (HCCP) TFRecords: one ``ExampleListWithContext`` per request.

Records are batched first and each batch is parsed at once with :meth:`tfrec.features.ListwiseSchema.parse`
(TF-Ranking's ``parse_from_example_list``), padded or truncated to a fixed ``list_size``: training lists are short
(~42 sampled items) and evaluation lists keep every candidate (~510), so train and eval readers take different
sizes. An evaluation reader (``whole_lists``) never truncates: a list longer than its ``list_size`` stops the
reading with an error that contains :data:`TOO_LONG` (each batch is parsed with one more slot, which must be
padding); :func:`longest_list` then gives the size needed. Context sequences (click history, all-scenario
positives) are densified with ``""`` padding. Each element is ``(features, labels)``: ``features`` the model
inputs plus every other parsed field a report needs, ``labels`` the dict that
:meth:`tfrec.models.preranking.ThreeTower.task_loss_terms` reads.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import tensorflow as tf

from tfrec.data import sharded_records, split_files
from tfrec.features import ListwiseSchema

MASK = "example_mask"
#: In the error of a ``whole_lists`` reader that meets a list longer than its ``list_size``.
TOO_LONG = "a list holds more items than the list_size of the reader"


def label_keys(schema: ListwiseSchema) -> Tuple[str, ...]:
    """The ``[B, L]`` fields that go to the labels dict."""
    return ("sample_type", "rank", "rc_position", "exposure", MASK) + \
        tuple(f"rt_{t}_position" for t in schema.tasks) + tuple(schema.tasks) + tuple(schema.item_scores)


def split_labels(parsed: Dict[str, tf.Tensor], schema: ListwiseSchema):
    """``(features, labels)`` from a parsed batch (sparse sequences densified; the mask in both)."""
    features = {k: (tf.sparse.to_dense(v, default_value="") if isinstance(v, tf.SparseTensor) else v)
                for k, v in parsed.items()}
    labels = {k: features[k] for k in label_keys(schema)}
    return features, labels


def make_listwise_dataset(files, schema: ListwiseSchema, global_batch_size: int, list_size: int, training: bool,
                          input_context: Optional[tf.distribute.InputContext] = None, shuffle_buffer: int = 0,
                          seed: Optional[int] = None, repeat: bool = False,
                          whole_lists: Optional[bool] = None) -> tf.data.Dataset:
    """Builds one input worker's pipeline of ``(features, labels)`` with ``[b, list_size]`` item tensors.

    Args:
      files: GZIP TFRecord shards.
      schema: the list-wise schema (``schema.json``).
      global_batch_size: requests per global batch (per replica from ``input_context``).
      list_size: items per list after padding / truncation.
      training: shuffle and drop the last partial batch.
      input_context / shuffle_buffer / seed / repeat: as in :func:`tfrec.data.make_dataset`.
      whole_lists: a list longer than ``list_size`` is an error (``tf.errors.InvalidArgumentError`` whose message
        contains :data:`TOO_LONG`) instead of being truncated; default ``not training`` (evaluation lists keep
        every candidate, the metrics need them all).
    """
    if list_size <= 0:
        raise ValueError(f"`list_size` must be > 0. Received: list_size={list_size}")
    batch = global_batch_size
    if input_context is not None:
        batch = input_context.get_per_replica_batch_size(global_batch_size)
    ds = sharded_records(files, input_context, training, seed, cycle_length=len(files))
    if training and shuffle_buffer > 0:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch, drop_remainder=training)
    whole = (not training) if whole_lists is None else bool(whole_lists)
    ds = ds.map(lambda s: split_labels(_parse(s, schema, list_size, whole), schema),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def _parse(serialized, schema: ListwiseSchema, list_size: int, whole_lists: bool) -> Dict[str, tf.Tensor]:
    if not whole_lists:
        return schema.parse(serialized, list_size=list_size, mask_feature_name=MASK)
    parsed = schema.parse(serialized, list_size=list_size + 1, mask_feature_name=MASK)
    check = tf.debugging.Assert(tf.logical_not(tf.reduce_any(parsed[MASK][:, list_size])), [TOO_LONG])
    items = set(schema.example_feature_spec()) | {MASK}
    with tf.control_dependencies([check]):
        return {k: (v[:, :list_size] if k in items else v) for k, v in parsed.items()}


def longest_list(files, schema: ListwiseSchema, batch_size: int = 256) -> int:
    """The number of items of the longest list in ``files`` (one pass over them, no truncation)."""
    ds = sharded_records(files).batch(batch_size)
    ds = ds.map(lambda s: tf.shape(schema.parse(s, list_size=None, mask_feature_name=MASK)[MASK])[1])
    return max((int(n) for n in ds.as_numpy_iterator()), default=0)


def distributed_listwise_dataset(strategy, data_dir: str, split: str, schema: ListwiseSchema,
                                 global_batch_size: int, list_size: int, training: bool, shuffle_buffer: int = 0,
                                 seed: Optional[int] = None, repeat: bool = False):
    """:func:`make_listwise_dataset` for every input worker of ``strategy``."""
    files = split_files(data_dir, split)
    return strategy.distribute_datasets_from_function(
        lambda ctx: make_listwise_dataset(files, schema, global_batch_size, list_size, training, ctx,
                                          shuffle_buffer, seed, repeat))
