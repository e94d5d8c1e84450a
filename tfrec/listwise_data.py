"""tf.data reader of the list-wise (HCCP) TFRecords: one ``ExampleListWithContext`` per request.

Records are batched first and each batch is parsed at once with :meth:`tfrec.features.ListwiseSchema.parse`
(TF-Ranking's ``parse_from_example_list``), padded or truncated to a fixed ``list_size``: training lists are short
(~42 sampled items) and evaluation lists keep every candidate (~510), so train and eval readers take different
sizes. Context sequences (click history, all-scenario positives) are densified with ``""`` padding. Each element
is ``(features, labels)``: ``features`` the model inputs plus every other parsed field a report needs, ``labels``
the dict that :meth:`tfrec.models.preranking.ThreeTower.task_loss_terms` reads.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import tensorflow as tf

from tfrec.data import sharded_records, split_files
from tfrec.features import ListwiseSchema

MASK = "example_mask"


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
                          seed: Optional[int] = None, repeat: bool = False) -> tf.data.Dataset:
    """Builds one input worker's pipeline of ``(features, labels)`` with ``[b, list_size]`` item tensors.

    Args:
      files: GZIP TFRecord shards.
      schema: the list-wise schema (``schema.json``).
      global_batch_size: requests per global batch (per replica from ``input_context``).
      list_size: items per list after padding / truncation.
      training: shuffle and drop the last partial batch.
      input_context / shuffle_buffer / seed / repeat: as in :func:`tfrec.data.make_dataset`.
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
    ds = ds.map(lambda s: split_labels(schema.parse(s, list_size=list_size, mask_feature_name=MASK), schema),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def distributed_listwise_dataset(strategy, data_dir: str, split: str, schema: ListwiseSchema,
                                 global_batch_size: int, list_size: int, training: bool, shuffle_buffer: int = 0,
                                 seed: Optional[int] = None, repeat: bool = False):
    """:func:`make_listwise_dataset` for every input worker of ``strategy``."""
    files = split_files(data_dir, split)
    return strategy.distribute_datasets_from_function(
        lambda ctx: make_listwise_dataset(files, schema, global_batch_size, list_size, training, ctx,
                                          shuffle_buffer, seed, repeat))
