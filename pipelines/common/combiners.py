"""Beam CombineFns of the row pipelines: counts per split, the numeric transform, rejections per reason, and the
per-bundle value counts that feed the vocabularies (:mod:`pipelines.common.vocab`, one ``CombinePerKey`` per
(field, bucket of values)).

Every statistics accumulator is one mergeable Python object per bundle, never one element per row, which keeps the
DirectRunner fast. The row-wise
combiners fold rows in batches with C-level iterators (``Counter.update`` of each column of ``zip(*rows)``,
``max(map(abs, ...))``; several times faster than a Python loop per value): ``add_inputs`` takes a batch (the
pipeline's parser passes a few hundred rows at a time), ``add_input`` buffers up to :data:`BUFFER_ROWS` rows first.
"""

from __future__ import annotations

import collections
import functools
import operator
import zlib
from typing import Callable, Dict, Iterable, Iterator, List, Tuple

import apache_beam as beam

from pipelines.criteo.parse import REASONS, Row
from tfrec.features import CRITEO_CATEGORICAL, CRITEO_DENSE, MISSING_TOKEN
from tfrec.transforms import ScaleAccumulator

#: Rows kept in an accumulator before they are folded into its counts.
BUFFER_ROWS = 256

_not_none = functools.partial(operator.is_not, None)


class VocabAccumulator:
    """Per-field value counts (``counts``: field -> Counter of raw bytes) plus rows not yet counted."""

    __slots__ = ("counts", "pending")

    def __init__(self, fields: Iterable[str]):
        self.counts: Dict[str, collections.Counter] = {f: collections.Counter() for f in fields}
        self.pending: List[List[bytes]] = []

    def flush(self) -> "VocabAccumulator":
        if self.pending:
            rows = self.pending
            self.pending = []
            # zip(*rows) transposes the batch into one tuple per field in C; Counter.update of a tuple then counts
            # in C too (~20% less time than Counter.update(map(itemgetter(j), rows)) per field).
            for counter, column in zip(self.counts.values(), zip(*rows)):
                counter.update(column)
        return self

    def distinct(self) -> int:
        """Distinct (field, value) pairs counted so far."""
        return sum(map(len, self.counts.values()))

    def buckets(self, num_buckets: int) -> Iterator[Tuple[Tuple[int, int], Dict[bytes, int]]]:
        """``((field index, bucket), {value: count})`` of every counted value, the values of a field spread over
        ``num_buckets`` buckets by CRC-32 (the same bucket on every worker); a missing value (``b""``) is counted as
        :data:`tfrec.features.MISSING_TOKEN` (merged with that token, as :func:`vocabulary` does)."""
        self.flush()
        missing = MISSING_TOKEN.encode("utf-8")
        crc32 = zlib.crc32
        for i, counter in enumerate(self.counts.values()):
            n_missing = counter.pop(b"", 0)
            if n_missing:
                counter[missing] += n_missing
            parts: Dict[int, Dict[bytes, int]] = {}
            for value, n in counter.items():
                b = crc32(value) % num_buckets
                part = parts.get(b)
                if part is None:
                    part = parts[b] = {}
                part[value] = n
            for b, part in parts.items():
                yield (i, b), part

    def __getstate__(self):
        self.flush()
        return self.counts

    def __setstate__(self, counts):
        self.counts = counts
        self.pending = []


def vocabulary(counter: collections.Counter, min_count: int) -> List[Tuple[str, int]]:
    """(token, count) with count >= min_count, by count descending then token ascending.

    A missing value (``b""``) counts as :data:`tfrec.features.MISSING_TOKEN`.
    """
    merged: Dict[str, int] = {}
    for value, n in counter.items():
        token = value.decode("utf-8") if value else MISSING_TOKEN
        merged[token] = merged.get(token, 0) + n
    kept = [(t, n) for t, n in merged.items() if n >= min_count]
    kept.sort(key=lambda tn: (-tn[1], tn[0]))
    return kept


class VocabCombineFn(beam.CombineFn):
    """Counts the categorical values of :class:`Row` s; outputs field -> [(token, count)] with count >= min_count.

    Tokens are sorted by count descending, then token ascending (deterministic); missing values count as
    ``MISSING_TOKEN``. Input: rows of one split (the pipeline feeds the train split only).
    """

    def __init__(self, min_count: int, fields: Iterable[str] = CRITEO_CATEGORICAL):
        self.min_count = min_count
        self.fields = tuple(fields)

    def create_accumulator(self) -> VocabAccumulator:
        return VocabAccumulator(self.fields)

    def add_input(self, acc: VocabAccumulator, row: Row) -> VocabAccumulator:
        acc.pending.append(row.categorical)
        if len(acc.pending) >= BUFFER_ROWS:
            acc.flush()
        return acc

    def add_inputs(self, acc: VocabAccumulator, rows: Iterable[Row]) -> VocabAccumulator:
        acc.pending.extend(row.categorical for row in rows)
        return acc.flush()

    def merge_accumulators(self, accs: Iterable[VocabAccumulator]) -> VocabAccumulator:
        accs = iter(accs)
        out = next(accs).flush()
        for acc in accs:
            acc.flush()
            for field, counter in acc.counts.items():
                out.counts[field].update(counter)
        return out

    def compact(self, acc: VocabAccumulator) -> VocabAccumulator:
        return acc.flush()

    def extract_output(self, acc: VocabAccumulator) -> Dict[str, List[Tuple[str, int]]]:
        acc.flush()
        return {field: vocabulary(counter, self.min_count) for field, counter in acc.counts.items()}


class ScaleCombineFn(beam.CombineFn):
    """``tfrec.transforms.ScaleAccumulator`` as a CombineFn over :class:`Row` s; outputs ``params()``.

    The accumulator is ``[ScaleAccumulator, pending dense lists]``. Buffered rows are reduced to the largest
    ``|x|`` per field before they reach the ScaleAccumulator: every transform kind's ``|pre_scale(x)|`` is
    non-decreasing in ``|x|`` (``log1p(|x|)`` or ``|x|``), so the fitted maximum is the same as adding each
    row, at a fraction of the cost.
    """

    def __init__(self, kind: str, fields: Iterable[str] = CRITEO_DENSE):
        self.kind = kind
        self.fields = tuple(fields)
        ScaleAccumulator(kind, self.fields)  # checks kind

    def create_accumulator(self) -> list:
        return [ScaleAccumulator(self.kind, self.fields), []]

    def _flush(self, acc: list) -> list:
        pending = acc[1]
        if pending:
            acc[1] = []
            largest = {}
            for j, field in enumerate(self.fields):
                largest[field] = max(map(abs, filter(_not_none, map(operator.itemgetter(j), pending))),
                                     default=None)
            acc[0].add(largest)
        return acc

    def add_input(self, acc: list, row: Row) -> list:
        acc[1].append(row.dense)
        if len(acc[1]) >= BUFFER_ROWS:
            self._flush(acc)
        return acc

    def add_inputs(self, acc: list, rows: Iterable[Row]) -> list:
        acc[1].extend(row.dense for row in rows)
        return self._flush(acc)

    def merge_accumulators(self, accs: Iterable[list]) -> list:
        accs = iter(accs)
        out = self._flush(next(accs))
        for acc in accs:
            out[0].merge(self._flush(acc)[0])
        return out

    def compact(self, acc: list) -> list:
        return self._flush(acc)

    def extract_output(self, acc: list) -> Dict[str, object]:
        return self._flush(acc)[0].params()


class SplitCountFn(beam.CombineFn):
    """Rows and positives of a PCollection of :class:`Row`; outputs ``(rows, positives)``."""

    def create_accumulator(self) -> list:
        return [0, 0]

    def add_input(self, acc: list, row: Row) -> list:
        acc[0] += 1
        acc[1] += row.label
        return acc

    def add_inputs(self, acc: list, rows: Iterable[Row]) -> list:
        rows = list(rows)
        acc[0] += len(rows)
        acc[1] += sum(row.label for row in rows)
        return acc

    def merge_accumulators(self, accs: Iterable[list]) -> list:
        out = [0, 0]
        for a in accs:
            out[0] += a[0]
            out[1] += a[1]
        return out

    def extract_output(self, acc: list) -> Tuple[int, int]:
        return acc[0], acc[1]


class ReasonCountFn(beam.CombineFn):
    """Dead-letter records (dicts with a ``reason``) per reason; outputs a dict with every known reason
    (``reasons``: the Criteo parser's by default)."""

    def __init__(self, reasons: Iterable[str] = REASONS):
        self.reasons = tuple(reasons)

    def create_accumulator(self) -> collections.Counter:
        return collections.Counter()

    def add_input(self, acc: collections.Counter, record: dict) -> collections.Counter:
        acc[record["reason"]] += 1
        return acc

    def add_inputs(self, acc: collections.Counter, records: Iterable[dict]) -> collections.Counter:
        acc.update(record["reason"] for record in records)
        return acc

    def merge_accumulators(self, accs: Iterable[collections.Counter]) -> collections.Counter:
        accs = iter(accs)
        out = next(accs)
        for a in accs:
            out.update(a)
        return out

    def extract_output(self, acc: collections.Counter) -> Dict[str, int]:
        out = {r: 0 for r in self.reasons}
        out.update(acc)
        return out


class RowsInFn(beam.CombineFn):
    """Input lines that are rows, i.e. all lines except x1 headers; input ``(file_name, [line, ...])`` chunks.

    Independent of the parser's outcome: it is the left side of ``rows_in == written + rejected``.
    """

    def __init__(self, count_rows):
        self.count_rows = count_rows  # (file_name, lines) -> rows among the lines

    def create_accumulator(self) -> int:
        return 0

    def add_input(self, acc: int, element: Tuple[str, List[bytes]]) -> int:
        return acc + self.count_rows(element[0], element[1])

    def merge_accumulators(self, accs: Iterable[int]) -> int:
        return sum(accs)

    def extract_output(self, acc: int) -> int:
        return acc


class TrainStatsFn(beam.CombineFn):
    """Train rows -> ``((rows, positives), transform params)``: a count CombineFn and ScaleCombineFn over the same
    rows (a tuple combiner whose ``add_inputs`` stays batched). The vocabularies are counted apart, per (field,
    value) (:mod:`pipelines.common.vocab`).

    ``count_fn`` (default :class:`SplitCountFn`) and ``dense`` (default Criteo's fields) let other row types (rows
    with a ``dense`` list) reuse it."""

    def __init__(self, kind: str, count_fn: beam.CombineFn = None, dense: Iterable[str] = CRITEO_DENSE):
        self.fns = (count_fn or SplitCountFn(), ScaleCombineFn(kind, dense))

    def create_accumulator(self) -> list:
        return [fn.create_accumulator() for fn in self.fns]

    def add_input(self, acc: list, row: Row) -> list:
        return [fn.add_input(a, row) for fn, a in zip(self.fns, acc)]

    def add_inputs(self, acc: list, rows: Iterable[Row]) -> list:
        rows = list(rows)
        return [fn.add_inputs(a, rows) for fn, a in zip(self.fns, acc)]

    def merge_accumulators(self, accs: Iterable[list]) -> list:
        accs = list(accs)
        return [fn.merge_accumulators([a[i] for a in accs]) for i, fn in enumerate(self.fns)]

    def compact(self, acc: list) -> list:
        return [fn.compact(a) for fn, a in zip(self.fns, acc)]

    def extract_output(self, acc: list) -> tuple:
        return tuple(fn.extract_output(a) for fn, a in zip(self.fns, acc))


class PipelineStatsFn(beam.CombineFn):
    """All the statistics of one run over keyed inputs ``(key, value)``; accumulator: key -> sub-accumulator.

    Keys: ``train`` (rows: counts, transform), ``valid`` / ``test`` (rows: counts) and ``deadletter``
    (dead-letter dicts: counts per reason). ``count_fn`` makes the per-split counter (default
    :class:`SplitCountFn`); ``categorical`` (the fields whose values the parser counts for the vocabularies) /
    ``dense`` / ``reasons`` default to Criteo's. The output maps each key to its sub-combiner's output.
    ``ParseRows`` pre-aggregates one accumulator per bundle with it (no per-element Beam edge) and
    :class:`MergeAccumulatorsFn` merges the bundles' accumulators.
    """

    def __init__(self, min_count: int, kind: str, count_fn: Callable[[], beam.CombineFn] = SplitCountFn,
                 categorical: Iterable[str] = CRITEO_CATEGORICAL, dense: Iterable[str] = CRITEO_DENSE,
                 reasons: Iterable[str] = REASONS):
        self.min_count = min_count
        self.categorical = tuple(categorical)
        self.fns = {"train": TrainStatsFn(kind, count_fn(), dense), "valid": count_fn(),
                    "test": count_fn(), "deadletter": ReasonCountFn(reasons)}

    def create_accumulator(self) -> dict:
        return {key: fn.create_accumulator() for key, fn in self.fns.items()}

    def add_input(self, acc: dict, element: Tuple[str, object]) -> dict:
        key, value = element
        acc[key] = self.fns[key].add_input(acc[key], value)
        return acc

    def merge_accumulators(self, accs: Iterable[dict]) -> dict:
        accs = list(accs)
        return {key: fn.merge_accumulators([a[key] for a in accs]) for key, fn in self.fns.items()}

    def compact(self, acc: dict) -> dict:
        return {key: fn.compact(acc[key]) for key, fn in self.fns.items()}

    def extract_output(self, acc: dict) -> dict:
        return {key: fn.extract_output(acc[key]) for key, fn in self.fns.items()}


class MergeAccumulatorsFn(beam.CombineFn):
    """Combines accumulators of ``fn`` that were pre-aggregated elsewhere (e.g. one per bundle in a DoFn)."""

    def __init__(self, fn: beam.CombineFn):
        self.fn = fn

    def create_accumulator(self):
        return self.fn.create_accumulator()

    def add_input(self, acc, other):
        return self.fn.merge_accumulators([acc, other])

    def merge_accumulators(self, accs):
        return self.fn.merge_accumulators(accs)

    def compact(self, acc):
        return self.fn.compact(acc)

    def extract_output(self, acc):
        return self.fn.extract_output(acc)
