"""tf.data readers of the pipelines' TFRecords.

Reads ``<dir>/<split>-SSSSS-of-NNNNN.tfrecord.gz``: shards are interleaved, records are batched first and then
parsed with one ``tf.io.parse_example`` per batch (much faster than parsing records one by one), the batch size
per replica comes from the strategy's ``InputContext``, and the pipeline ends with a prefetch. Each element is
``(features, label, weight)``, the form Keras ``fit`` takes as ``(x, y, sample_weight)``; for a multi-task dataset
(``schema.json`` of kind ``multitask``) ``label`` is ``[batch, 2]`` = (click, conversion). The order is
deterministic for a given seed (parallel reads and parses keep their order), so a seed reproduces a run. A
training split that fits a memory budget is parsed once and served from memory instead (:mod:`tfrec.data_memory`).
"""

from __future__ import annotations

import glob
import json
import os
from typing import Callable, Dict, List, Optional

import tensorflow as tf

import tfrec.data_memory as data_memory
from tfrec.errors import DatasetError
from tfrec.features import PointwiseSchema

SPLITS = ("train", "valid", "test")


def _require_dir(data_dir: str) -> None:
    if not os.path.isdir(data_dir):
        raise DatasetError(f"prepared dataset directory not found: {data_dir}")


def split_files(data_dir: str, split: str) -> List[str]:
    """The sorted shard files of ``split`` in ``data_dir``.

    Raises:
      DatasetError: the directory or the split's files are missing.
    """
    _require_dir(data_dir)
    files = sorted(glob.glob(os.path.join(data_dir, f"{split}-*-of-*.tfrecord.gz")))
    if not files:
        raise DatasetError(f"no {split} shards ({split}-*-of-*.tfrecord.gz) in {data_dir}")
    return files


def load_schema(data_dir: str):
    """The schema of a prepared dataset, as its family reads it (``tfrec.families.family_of``): a
    ``PointwiseSchema``, a ``MultiTaskSchema`` or a ``ListwiseSchema``.

    Raises:
      DatasetError: the directory or its ``schema.json`` is missing.
    """
    from tfrec.families.registry import family_of

    return family_of(data_dir).load_schema(data_dir)


def load_stats(data_dir: str) -> Dict[str, object]:
    """Reads ``stats.json`` of a prepared dataset."""
    _require_dir(data_dir)
    path = os.path.join(data_dir, "stats.json")
    if not os.path.exists(path):
        raise DatasetError(f"stats.json not found in {data_dir} (is it a prepared dataset directory?)")
    with open(path, "r", encoding="utf-8") as f:
        return json.load(f)


def parse_batch(serialized: tf.Tensor, schema: PointwiseSchema):
    """Parses a ``[batch]`` string tensor into ``(features, label, weight)``; the schema gives the label
    (:meth:`tfrec.features.PointwiseSchema.pop_labels`: a multi-task schema's is ``[batch, 2]`` = (click,
    conversion))."""
    parsed = tf.io.parse_example(serialized, schema.parse_spec(with_label=True))
    label = schema.pop_labels(parsed)
    weight = parsed.pop(schema.weight)
    return parsed, label, weight


def reweight(label: tf.Tensor, beta_pos: float) -> tf.Tensor:
    """The KDD 2024 Eq. 15 sample weight of a batch: ``beta_pos`` where ``label == 1``, 1 elsewhere.

    Used by the reader when ``data.beta_pos`` overrides the weights written at prepare time (a sparsity sweep
    reads one prepared dataset at several beta_pos). A multi-task label ``[batch, 2]`` (click, conversion) is
    weighted by its click, as the multi-task pipeline writes ``weight``.
    """
    if label.shape.rank == 2:
        label = label[:, 0]
    beta = tf.constant(float(beta_pos), label.dtype)
    return tf.where(tf.equal(label, 1.0), beta * tf.ones_like(label), tf.ones_like(label))


def sharded_records(files: List[str], input_context: Optional[tf.distribute.InputContext] = None,
                    training: bool = False, seed: Optional[int] = None, cycle_length: int = 4) -> tf.data.Dataset:
    """The serialized records of one input pipeline (worker): GZIP shards interleaved, shuffled by file when
    ``training``.

    With several input pipelines the input is sharded by file when every pipeline gets at least one file, and by
    record otherwise (every pipeline reads all files and keeps every n-th record), as tf.data's AutoShardPolicy
    FILE and DATA do, so a worker never gets an empty split.
    """
    pipelines, pipeline_id = 1, 0
    if input_context is not None:
        pipelines, pipeline_id = input_context.num_input_pipelines, input_context.input_pipeline_id
    by_file = pipelines > 1 and len(files) >= pipelines
    ds = tf.data.Dataset.from_tensor_slices(list(files))
    if by_file:
        ds = ds.shard(pipelines, pipeline_id)
    if training:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    ds = ds.interleave(lambda f: tf.data.TFRecordDataset(f, compression_type="GZIP"),
                       cycle_length=max(1, min(cycle_length, len(files))),
                       num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if pipelines > 1 and not by_file:
        ds = ds.shard(pipelines, pipeline_id)
    return ds


def make_dataset(files: List[str], schema: PointwiseSchema, global_batch_size: int, training: bool,
                 input_context: Optional[tf.distribute.InputContext] = None, shuffle_buffer: int = 0,
                 cycle_length: int = 4, seed: Optional[int] = None, repeat: bool = False,
                 beta_pos: Optional[float] = None, negative_keep_ratio: float = 1.0, in_memory_max_bytes: int = 0,
                 rows: int = 0, encode: Optional[Callable] = None) -> tf.data.Dataset:
    """Builds the input pipeline of one input worker.

    When ``rows`` parsed rows fit in ``in_memory_max_bytes`` (:func:`tfrec.data_memory.fits`), the worker's records
    are parsed once and its batches served from memory, shuffled by index each pass (:mod:`tfrec.data_memory`);
    otherwise they are streamed from the files as below.

    Args:
      files: TFRecord shards (GZIP).
      schema: the dataset's schema (gives the parse spec and the label / weight names).
      global_batch_size: batch size summed over all replicas.
      training: shuffle and drop the last partial batch (so every replica gets equal batches).
      input_context: from ``strategy.distribute_datasets_from_function``; gives the per-replica batch size and
        shards the files over input pipelines (one per worker).
      shuffle_buffer: examples in the shuffle buffer (training only; 0 disables).
      cycle_length: shards read concurrently.
      seed: shuffle seed (file order and example order).
      repeat: repeat forever (when steps per epoch are fixed).
      beta_pos: when given, the weight becomes ``beta_pos`` for positives and 1 for negatives (:func:`reweight`),
        replacing the ``weight`` feature written at prepare time.
      negative_keep_ratio: keep each negative with this probability (negative sampling; 1.0 keeps all). The
        draw is a seeded hash of the serialized record and ``seed``, so a record is kept or dropped the same way
        in every epoch and every run with the same seed.
      in_memory_max_bytes: memory budget of the in-memory path (0 always streams).
      rows: rows of the split (``stats.json``), summed over all input workers (0: unknown, streams).
      encode: the model's ``features -> encoded features`` (:meth:`tfrec.layers.FeatureEmbedding.encode`),
        applied once to a split held in memory (:func:`tfrec.data_memory.encoded`); a streamed split keeps raw
        features.

    Returns:
      A dataset of ``(features dict of [b] tensors, label [b], weight [b])`` with ``b`` the per-replica batch
      (encoded features when the split is in memory and ``encode`` is given).
    """
    if not 0.0 < float(negative_keep_ratio) <= 1.0:
        raise ValueError(f"`negative_keep_ratio` must be in (0, 1]. Received: negative_keep_ratio="
                         f"{negative_keep_ratio}")
    batch = global_batch_size
    if input_context is not None:
        batch = input_context.get_per_replica_batch_size(global_batch_size)
    pipelines = 1 if input_context is None else input_context.num_input_pipelines
    in_memory = data_memory.fits(schema.parse_spec(with_label=True), -(-int(rows) // pipelines),
                                 int(in_memory_max_bytes))
    ds = sharded_records(files, input_context, training and not in_memory, seed, cycle_length)
    if negative_keep_ratio < 1.0:
        ds = ds.filter(_negative_filter(schema, float(negative_keep_ratio), 0 if seed is None else int(seed)))
    data = data_memory.load(ds, lambda s: parse_batch(s, schema)) if in_memory else None
    if data is not None and encode is not None:
        data = data_memory.encoded(data, encode)
    if data is not None:
        ds = data_memory.batches(data, batch, drop_remainder=training, shuffle=training and shuffle_buffer > 0,
                                 seed=seed, repeat=repeat)
    else:
        if training and shuffle_buffer > 0:
            ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        if repeat:
            ds = ds.repeat()
        ds = ds.batch(batch, drop_remainder=training)
        ds = ds.map(lambda s: parse_batch(s, schema), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if beta_pos is not None:
        ds = ds.map(lambda f, y, w: (f, y, reweight(y, beta_pos)), num_parallel_calls=tf.data.AUTOTUNE,
                    deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def _negative_filter(schema: PointwiseSchema, keep_ratio: float, seed: int):
    """Predicate on one serialized record: positives always pass, a negative passes with ``keep_ratio``.

    The uniform draw is ``fingerprint(seed, record) / 2^63`` (stateless, so epochs and restarts agree).
    """
    spec = {schema.label: tf.io.FixedLenFeature([], tf.float32)}
    salt = tf.constant(str(seed))

    def keep(serialized):
        label = tf.io.parse_single_example(serialized, spec)[schema.label]
        h = tf.strings.to_hash_bucket_fast(tf.strings.join([salt, serialized], separator=":"), 2 ** 62)
        u = tf.cast(h, tf.float64) / float(2 ** 62)
        return tf.logical_or(tf.not_equal(label, 0.0), u < keep_ratio)

    return keep


def distributed_dataset(strategy: tf.distribute.Strategy, data_dir: str, split: str, schema: PointwiseSchema,
                        global_batch_size: int, training: bool, shuffle_buffer: int = 0, cycle_length: int = 4,
                        seed: Optional[int] = None, repeat: bool = False, beta_pos: Optional[float] = None,
                        negative_keep_ratio: float = 1.0, in_memory_max_bytes: int = 0, rows: int = 0,
                        encode: Optional[Callable] = None):
    """``make_dataset`` for every input worker of ``strategy`` (``distribute_datasets_from_function``)."""
    files = split_files(data_dir, split)

    def fn(ctx: tf.distribute.InputContext) -> tf.data.Dataset:
        return make_dataset(files, schema, global_batch_size, training, ctx, shuffle_buffer, cycle_length, seed,
                            repeat, beta_pos, negative_keep_ratio, in_memory_max_bytes, rows, encode)

    return strategy.distribute_datasets_from_function(fn)
