"""Vocabularies that scale out: value counts combined per (field, value), the min-count cut before any sort.

The parser (:class:`pipelines.common.stages.ParseChunks`) counts the categorical values of the train rows of a
bundle in a :class:`pipelines.common.combiners.VocabAccumulator` and emits them as ``((field index, value),
count)`` pairs (at the end of the bundle, or earlier when it holds more than :data:`FLUSH_VALUES` distinct pairs,
so a long bundle's memory stays bounded). :class:`WriteVocabularies` then

1. sums the counts of each (field, value) with ``CombinePerKey``: a runner spreads the keys over its workers, so no
   worker holds every distinct value (Criteo Kaggle has ~34M, Criteo 1TB several hundred million);
2. drops the pairs below ``min_count`` (most of the distinct values of a long-tailed field);
3. groups what is left by field and writes ``vocab/<field>.txt``: tokens by count descending, then token
   ascending (code point order, which is UTF-8 byte order), one per line. A field with no token left gets an empty
   file. A missing value counts as :data:`tfrec.features.MISSING_TOKEN`.
"""

from __future__ import annotations

from typing import Callable, Iterable, Tuple

import apache_beam as beam

from pipelines.common import files

#: Distinct (field, value) pairs a parser bundle holds before it emits them (a few hundred bytes each).
FLUSH_VALUES = 1 << 20


def vocab_path(field: str) -> str:
    """A field's vocabulary file, relative to the output directory."""
    return f"vocab/{field}.txt"


def _at_least(element: Tuple[object, int], min_count: int) -> bool:
    return element[1] >= min_count


def _by_field(element: Tuple[Tuple[int, bytes], int]):
    (field, value), n = element
    return field, (value.decode("utf-8"), n)


class _WriteFieldVocabulary(beam.DoFn):
    """``(field index, [(token, count) or None, ...])`` -> the field's file; outputs ``(field name, size)``."""

    def __init__(self, out: str, fields: Tuple[str, ...], path: Callable[[str], str]):
        self.out, self.fields, self.path = out, fields, path

    def process(self, element):
        index, tokens = element
        kept = sorted((tn for tn in tokens if tn is not None), key=lambda tn: (-tn[1], tn[0]))
        field = self.fields[index]
        files.write_bytes(files.join(self.out, *self.path(field).split("/")),
                          "".join(t + "\n" for t, _ in kept).encode("utf-8"))
        yield field, len(kept)


class WriteVocabularies(beam.PTransform):
    """``((field index, value bytes), count)`` pairs -> one vocabulary file per field; outputs ``(field, size)``.

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
                | "CountPerValue" >> beam.CombinePerKey(sum)
                | "MinCount" >> beam.Filter(_at_least, self.min_count)
                | "ByField" >> beam.Map(_by_field))
        every = p | "EveryField" >> beam.Create([(i, None) for i in range(len(self.fields))])
        return ((kept, every) | "WithEveryField" >> beam.Flatten()
                | "GroupByField" >> beam.GroupByKey()
                | "WriteFiles" >> beam.ParDo(_WriteFieldVocabulary(self.out, self.fields, self.path)))
