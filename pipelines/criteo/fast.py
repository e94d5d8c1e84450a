"""Column-wise parse and tf.Example encoding of Kaggle rows, byte for byte what ``parse_kaggle`` + ``to_example`` give:
the column path of the Criteo pipeline (:func:`column_batches`).

Why: per row, ``parse_kaggle`` (13 ``float`` calls, a list per row) and ``to_example`` (filling a protobuf map
through the upb Python API, then serializing) cost most of the pipeline's CPU time. A chunk of a few thousand lines
is instead joined into one buffer and split there, validated and converted per column with NumPy
(:mod:`pipelines.criteo.fast_parse`), and serialized by assembling every example's bytes in one NumPy buffer
(:mod:`pipelines.criteo.fast_encode`); this module splits, shards and counts the rows. A line the column checks do
not clear (another field count, a negative or long number, a non-hexadecimal or long token, a bad label, anything
else) goes to the row-by-row parser, which gives the same row or the same rejection as before; so the output does
not depend on which path a line took (``tests/pipelines/criteo/test_criteo_fast.py`` checks the bytes against
``to_example``).
"""

from __future__ import annotations

import hashlib
from typing import List, Optional, Sequence, Tuple

import numpy as np

from pipelines.criteo.fast_encode import encode_examples
from pipelines.criteo.fast_parse import parse_chunk


def _below(h: np.ndarray, threshold: int) -> np.ndarray:
    if threshold >= 1 << 64:
        return np.ones(len(h), dtype=bool)
    return h < np.uint64(threshold)


def column_batches(raws: List[bytes], beta_pos: float, key: bytes, t_train: int, t_valid: int, num_shards: int,
                   fixed_split: Optional[str], acc: dict, fns: dict, counts: Sequence) -> Tuple[dict, List[int]]:
    """The column path of a chunk of Kaggle lines: parse, split and shard (the keyed BLAKE2b of each line, as
    :class:`pipelines.common.split.HashSplitter`), serialize, and fold the rows into the statistics.

    Args:
      raws: the chunk's lines, line breaks removed.
      beta_pos: the positives' weight.
      key, t_train, t_valid, num_shards: the splitter's key, thresholds and shards.
      fixed_split: the split of every row (files mode), or None (hash split).
      acc: a :class:`pipelines.common.combiners.PipelineStatsFn` accumulator, updated in place (counts per split;
        the train rows' largest ``|x|`` per dense field).
      fns: that CombineFn's sub-combiners (``fns["train"].fns[1]`` gives the dense field names).
      counts: one ``collections.Counter`` per categorical field, updated with the train rows' values.

    Returns:
      ``(batches, others)``: ``{(split, shard): [serialized example, ...]}`` and the indices of the lines left to
      the row parser.
    """
    cols, idx, others = parse_chunk(raws)
    if cols is None:
        return {}, others
    examples = encode_examples(cols, beta_pos)
    digests = b"".join([hashlib.blake2b(raws[i], digest_size=8, key=key).digest() for i in idx])
    h = np.frombuffer(digests, dtype="<u8")
    names = ("train", "valid", "test")
    if fixed_split is None:
        split = np.where(_below(h, t_train), 0, np.where(_below(h, t_valid), 1, 2))
    else:
        split = np.full(len(h), names.index(fixed_split))
    shard = (h % np.uint64(num_shards)).astype(np.int64)
    group = split * num_shards + shard
    order = np.argsort(group, kind="stable")
    sorted_groups = group[order]
    bounds = np.flatnonzero(np.diff(sorted_groups)) + 1
    batches = {}
    order_list = order.tolist()
    for a, b in zip([0, *bounds.tolist()], [*bounds.tolist(), len(order_list)]):
        g = int(sorted_groups[a])
        batches[(names[g // num_shards], g % num_shards)] = [examples[i] for i in order_list[a:b]]
    dense_fields = fns["train"].fns[1].fields
    for s, name in enumerate(names):
        mask = split == s
        rows = int(mask.sum())
        if not rows:
            continue
        positives = int(cols.label[mask].sum())
        count = acc[name][0] if name == "train" else acc[name]
        count[0] += rows
        count[1] += positives
        if name == "train":
            largest = {}
            for j, field in enumerate(dense_fields):
                there = mask & cols.present[:, j]
                largest[field] = float(np.abs(cols.dense[there, j]).max()) if there.any() else None
            acc["train"][1][0].add(largest)
            for counter, tokens in zip(counts, cols.tokens):
                counter.update(tokens[mask].tolist())  # (bytes without the NUL padding)
    return batches, others
