"""Vocabularies that scale out: value counts combined per key (field, bucket of values), the min-count cut before
any sort.

The parser (:class:`pipelines.common.stages.ParseChunks`) counts the categorical values of the train rows of a
bundle in a :class:`pipelines.common.combiners.VocabAccumulator` and emits them as ``((field index, bucket),
{value: count})`` (at the end of the bundle, or earlier when it holds more than :data:`FLUSH_VALUES` distinct
values, so a long bundle's memory stays bounded); a value's bucket is its CRC-32 modulo :data:`BUCKETS`, the same
on every worker. :class:`WriteVocabularies` then

1. sums the counts per key with ``CombinePerKey``: a runner spreads the ``fields x BUCKETS`` keys over its workers,
   so no worker holds every distinct value (Criteo Kaggle has ~34M, Criteo 1TB several hundred million). A key
   per (field, value) would spread them as well, at one Beam element per distinct value and bundle; a key per
   bucket costs one element per bucket and bundle;
2. drops the values below ``min_count`` (most of the distinct values of a long-tailed field);
3. groups what is left by field and writes ``vocab/<field>.txt``: tokens by count descending, then token
   ascending (code point order, which is UTF-8 byte order), one per line. A field with no token left gets an empty
   file. A missing value counts as :data:`tfrec.features.MISSING_TOKEN`.
"""

from __future__ import annotations

from typing import Callable, Dict, Iterable, Tuple

import apache_beam as beam

from pipelines.common import files

#: Distinct (field, value) pairs a parser bundle holds before it emits them (a few hundred bytes each).
FLUSH_VALUES = 1 << 20
#: Buckets of values per field (keys of the ``CombinePerKey``).
BUCKETS = 64


def vocab_path(field: str) -> str:
    """A field's vocabulary file, relative to the output directory."""
    return f"vocab/{field}.txt"


class SumCountsFn(beam.CombineFn):
    """Sums ``{value: count}`` dicts."""

    def create_accumulator(self) -> Dict[bytes, int]:
        return {}

    def add_input(self, acc: Dict[bytes, int], counts: Dict[bytes, int]) -> Dict[bytes, int]:
        if not acc:
            return dict(counts)
        get = acc.get
        for value, n in counts.items():
            acc[value] = get(value, 0) + n
        return acc

    def merge_accumulators(self, accs: Iterable[Dict[bytes, int]]) -> Dict[bytes, int]:
        out: Dict[bytes, int] = {}
        for acc in accs:
            out = self.add_input(out, acc)
        return out

    def extract_output(self, acc: Dict[bytes, int]) -> Dict[bytes, int]:
        return acc


def _kept(element: Tuple[Tuple[int, int], Dict[bytes, int]], min_count: int):
    """``((field, bucket), counts)`` -> ``(field, [(token, count), ...])`` of the values with count >= min_count."""
    (field, _), counts = element
    kept = [(value.decode("utf-8"), n) for value, n in counts.items() if n >= min_count]
    if kept:
        yield field, kept


class _WriteFieldVocabulary(beam.DoFn):
    """``(field index, [[(token, count), ...] or None, ...])`` -> the field's file; outputs ``(field name, size)``."""

    def __init__(self, out: str, fields: Tuple[str, ...], path: Callable[[str], str]):
        self.out, self.fields, self.path = out, fields, path

    def process(self, element):
        index, tokens = element
        kept = sorted((tn for part in tokens if part is not None for tn in part), key=lambda tn: (-tn[1], tn[0]))
        field = self.fields[index]
        files.write_bytes(files.join(self.out, *self.path(field).split("/")),
                          "".join(t + "\n" for t, _ in kept).encode("utf-8"))
        yield field, len(kept)


class WriteVocabularies(beam.PTransform):
    """``((field index, bucket), {value bytes: count})`` -> one vocabulary file per field; outputs ``(field, size)``.

    Args:
      out: the output directory.
      fields: the field names, by index.
      min_count: the least count a token needs to be kept.
      path: field -> its file, relative to ``out`` (default :func:`vocab_path`).
    """

    def __init__(self, out: str, fields: Iterable[str], min_count: int, path: Callable[[str], str] = vocab_path):
        super().__init__()
        self.out, self.fields, self.min_count, self.path = out, tuple(fields), min_count, path

    def expand(self, pairs):
        p = pairs.pipeline
        kept = (pairs
                | "CountPerBucket" >> beam.CombinePerKey(SumCountsFn())
                | "MinCount" >> beam.FlatMap(_kept, self.min_count))
        every = p | "EveryField" >> beam.Create([(i, None) for i in range(len(self.fields))])
        return ((kept, every) | "WithEveryField" >> beam.Flatten()
                | "GroupByField" >> beam.GroupByKey()
                | "WriteFiles" >> beam.ParDo(_WriteFieldVocabulary(self.out, self.fields, self.path)))
