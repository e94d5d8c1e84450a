"""The Beam stages of the row pipelines (:mod:`pipelines.criteo`, :mod:`pipelines.multitask`): the parse step
(:class:`ParseChunks`: chunks of lines -> batches of serialized examples, dead letters, per-bundle statistics,
per-bundle vocabulary counts), the reads and parses of every input group (:func:`parse_inputs`), and the writes of
the examples and dead letters through the shard sink (:func:`write_outputs`). The hybrid-sample pipeline
(:mod:`pipelines.hybrid_samples`) uses the split, the reads and the writes.

A pipeline subclasses :class:`ParseChunks` with its own header test, parser and serializer; the routing of each
line (header, row or dead letter) and the statistics it feeds are the same for all, so every pipeline checks
``rows_in == sum(rows_written) + rows_rejected`` against what its sinks wrote (:mod:`pipelines.common.accounting`).
"""

from __future__ import annotations

import hashlib
import json
from typing import Callable, Dict, List, Optional, Tuple

import apache_beam as beam
from apache_beam.options.pipeline_options import GoogleCloudOptions
from apache_beam.pvalue import TaggedOutput
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue

from pipelines.common.combiners import PipelineStatsFn, VocabAccumulator
from pipelines.common.read import ReadLines
from pipelines.common.runner import count_progress
from pipelines.common.sink import LINES, ShardNaming, WriteShards, temp_dir_under
from pipelines.common.split import SPLITS, HashSplitter
from pipelines.common.vocab import BUCKETS, FLUSH_VALUES
from pipelines.criteo.parse import Rejection, raw_text, strip_eol

DEADLETTER = "deadletter"
STATS = "stats"
VOCAB = "vocab"
SHARD_TEMPLATE = "-SSSSS-of-NNNNN"
#: The dead-letter file, relative to the output directory.
DEADLETTER_FILE = f"{DEADLETTER}/{DEADLETTER}-00000-of-00001.jsonl"
#: Parsed rows folded into the statistics at a time. Small enough that the rows die young: holding a whole
#: chunk's rows (thousands of tuples and lists) until its end made them survive into the older GC generations
#: and cost two full collections (~0.4 s) per 100k rows; folding 256 at a time keeps the batched combiners fast.
STATS_ROWS = 256

__all__ = ["DEADLETTER", "DEADLETTER_FILE", "SPLITS", "STATS", "VOCAB", "HashSplitter", "ParseChunks",
           "parse_inputs", "write_outputs", "temp_directory"]


_GLOBAL_TIMESTAMP = GlobalWindow().max_timestamp()
_GLOBAL_WINDOWS = (GlobalWindow(),)


def _global(value) -> WindowedValue:
    return WindowedValue(value, _GLOBAL_TIMESTAMP, _GLOBAL_WINDOWS)


class ParseChunks(beam.DoFn):
    """The parse step of the row pipelines: (file, [line, ...]) -> batches ``((split, shard), [serialized example,
    ...])``, dead-letter dicts on ``deadletter``, one statistics accumulator per bundle on ``stats`` and the
    bundle's vocabulary counts ``((field index, bucket), {value: count})`` on ``vocab``.

    Header lines produce nothing. Every other line becomes a row or a :class:`pipelines.criteo.parse.Rejection`:
    a row goes to its split (``self.split`` when fixed, else by :class:`HashSplitter` on its bytes without the
    line break, which also gives the shard in both modes) and into that split's statistics; a rejection becomes
    one dead-letter dict (``source``, ``reason``, ``message``, ``row``) on ``deadletter`` and is counted by
    reason; so lines = headers + rows + rejections. A chunk of lines gives at most one batch per (split, shard)
    on the main output (Beam's per-element cost is paid per batch, not per row). Each bundle pre-aggregates the
    run's statistics (a :class:`pipelines.common.combiners.PipelineStatsFn`, :data:`STATS_ROWS` rows at a time) and
    the values of the train rows' categorical fields (``self.stats.categorical``), and emits them at the end of
    the bundle (the counts also earlier, past :data:`pipelines.common.vocab.FLUSH_VALUES` distinct values).

    A subclass sets ``self.split`` (a split name or ``None``), builds ``self.splitter`` (:class:`HashSplitter`)
    and ``self.stats`` (``PipelineStatsFn``) in ``setup``, and gives a file's row functions in
    :meth:`row_functions`.
    """

    split: Optional[str]
    splitter: HashSplitter
    stats: PipelineStatsFn

    def row_functions(self, file_name: str) -> Tuple[Optional[Callable[[bytes], bool]],
                                                     Callable[[bytes], object], Callable[[object], bytes]]:
        """How to read the lines of ``file_name``.

        Args:
          file_name: the file the lines come from.

        Returns:
          ``(is_header, parse, serialize)``: ``is_header(line) -> bool`` on a line as read (``None`` when the
          file has no header lines); ``parse(raw) -> row | Rejection`` on the line without its line break;
          ``serialize(row) -> bytes``, the serialized example.
        """
        raise NotImplementedError

    def start_bundle(self):
        self.acc = self.stats.create_accumulator()
        self.vocab = VocabAccumulator(self.stats.categorical)

    def process(self, element):
        file_name, lines = element
        is_header_fn, parse, serialize = self.row_functions(file_name)
        fixed, n = self.split, self.splitter.num_shards
        key, t_train, t_valid = self.splitter.key, self.splitter.t_train, self.splitter.t_valid
        blake2b, from_bytes = hashlib.blake2b, int.from_bytes  # HashSplitter.hash and split_of, inlined
        acc, fns, vocab = self.acc, self.stats.fns, self.vocab
        out: Dict[tuple, list] = {}  # (split, shard) -> serialized examples of the chunk
        written = rejected = 0
        for start in range(0, len(lines), STATS_ROWS):
            rows: Dict[str, list] = {k: [] for k in acc}  # parsed rows (dead-letter dicts) for the statistics
            for line in lines[start:start + STATS_ROWS]:
                if is_header_fn is not None and is_header_fn(line):
                    continue
                raw = strip_eol(line)
                parsed = parse(raw)
                if type(parsed) is Rejection:
                    record = {"source": file_name, "reason": parsed.reason, "message": parsed.message,
                              "row": raw_text(raw)}
                    rows[DEADLETTER].append(record)
                    yield TaggedOutput(DEADLETTER, record)
                else:
                    h = from_bytes(blake2b(raw, digest_size=8, key=key).digest(), "little")
                    split = fixed or ("train" if h < t_train else ("valid" if h < t_valid else "test"))
                    rows[split].append(parsed)
                    batch = out.get((split, h % n))
                    if batch is None:
                        batch = out[(split, h % n)] = []
                    batch.append(serialize(parsed))
            for k, batch in rows.items():
                if batch:
                    acc[k] = fns[k].add_inputs(acc[k], batch)
                    if k == DEADLETTER:
                        rejected += len(batch)
                    else:
                        written += len(batch)
                        if k == "train":
                            vocab.pending.extend(row.categorical for row in batch)
                            vocab.flush()
        count_progress(written, rejected)
        yield from out.items()
        if vocab.distinct() > FLUSH_VALUES:
            for part in vocab.buckets(BUCKETS):
                yield TaggedOutput(VOCAB, part)
            self.vocab = VocabAccumulator(self.stats.categorical)

    def finish_bundle(self):
        acc, self.acc = self.stats.compact(self.acc), None
        yield TaggedOutput(STATS, _global(acc))
        for part in self.vocab.buckets(BUCKETS):
            yield TaggedOutput(VOCAB, _global(part))
        self.vocab = None


def _merged(pcolls: list, label: str):
    """The one PCollection of ``pcolls``, or their ``Flatten`` (labelled ``label``) when there are several."""
    if len(pcolls) == 1:
        return pcolls[0]
    return pcolls | label >> beam.Flatten()


def parse_inputs(p: beam.Pipeline, groups: Dict[str, List[str]],
                 parser: Callable[[Optional[str]], ParseChunks]) -> Dict[str, object]:
    """Adds the reads and the parse step of every input group.

    Args:
      p: the pipeline.
      groups: input group -> its files (``InputPlan.files``: the split name, or ``""`` for the hash split). Each
        group gets a :class:`pipelines.common.read.ReadLines` (``Read[group]``) and a ``ParDo`` of its parser
        (``Parse[group]``); the hash-split group is named ``inputs``.
      parser: the group's fixed split (``None`` in hash mode) -> its :class:`ParseChunks` DoFn.

    Returns:
      The PCollections ``lines`` ((file, [line bytes]) chunks read), ``examples`` (batches ``((split, shard),
      [serialized example, ...])``), ``deadletter`` (dead-letter dicts), ``stats`` (the statistics accumulators,
      one per bundle, to merge with a :class:`pipelines.common.combiners.MergeAccumulatorsFn`) and ``vocab``
      (``((field index, bucket), {value: count})`` per bundle, for :class:`pipelines.common.vocab.WriteVocabularies`).
    """
    out: Dict[str, list] = {"lines": [], "examples": [], DEADLETTER: [], STATS: [], VOCAB: []}
    for group, paths in groups.items():
        name = group or "inputs"
        # Raw bytes in chunks of lines: undecodable bytes reach the parser (and the dead letter).
        lines = p | f"Read[{name}]" >> ReadLines(paths)
        parsed = lines | f"Parse[{name}]" >> beam.ParDo(parser(group or None)).with_outputs(
            DEADLETTER, STATS, VOCAB, main="examples")
        out["lines"].append(lines)
        for tag in ("examples", DEADLETTER, STATS, VOCAB):
            out[tag].append(parsed[tag])
    labels = {"lines": "AllLines", "examples": "AllExamples", DEADLETTER: "AllDead", STATS: "AllBundleStats",
              VOCAB: "AllVocabCounts"}
    return {k: _merged(v, labels[k]) for k, v in out.items()}


def temp_directory(p: beam.Pipeline, out: str) -> str:
    """The temporary directory of a run's shard parts: under ``--temp_location`` when given, else under ``out``
    (removed by the last step, :func:`pipelines.common.sink.remove_temp_dir`)."""
    return temp_dir_under(p.options.view_as(GoogleCloudOptions).temp_location or out)


def _dead_json(record: dict) -> Tuple[tuple, List[bytes]]:
    return (DEADLETTER, 0), [json.dumps(record).encode("utf-8")]


def write_outputs(p: beam.Pipeline, out: str, shards: int, examples, deadletter, temp_dir: str,
                  label: str = "WriteExamples") -> Tuple[object, object]:
    """Adds the writes of the examples and the dead letters under ``out`` (:class:`pipelines.common.sink
    .WriteShards`: no grouping of records, every shard file written even when empty).

    Args:
      p: the pipeline.
      out: the output directory.
      shards: shards per split.
      examples: batches ``((split, shard), [serialized example, ...])``, written as
        ``<split>-SSSSS-of-NNNNN.tfrecord.gz``.
      deadletter: dead-letter dicts, written as JSON lines to :data:`DEADLETTER_FILE`.
      temp_dir: the directory of the parts (:func:`temp_directory`).
      label: the label of the examples' write.

    Returns:
      ``(written, dead_written)``: a :class:`pipelines.common.sink.ShardResult` per shard file (``destination``
      ``(split, shard)``, ``file_name`` under ``out``, ``records`` written) and one for the dead-letter file.
    """
    written = examples | label >> WriteShards(out, ShardNaming(shards), [(s, k) for s in SPLITS for k in range(shards)],
                                             temp_dir)
    dead_written = (deadletter
                    | "DeadJson" >> beam.Map(_dead_json)
                    | "WriteDead" >> WriteShards(out, ShardNaming(1, ".jsonl", f"{DEADLETTER}/"), [(DEADLETTER, 0)],
                                                 temp_dir, fmt=LINES))
    return written, dead_written
