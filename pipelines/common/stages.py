"""The Beam stages shared by the line-based pipelines (:mod:`pipelines.criteo.pipeline`,
:mod:`pipelines.multitask.pipeline`): the hash split and shard of a row, the parse step (:class:`ParseChunks`:
chunks of lines -> batches of serialized examples, dead letters, per-bundle statistics), the reads and parses of
every input group (:func:`parse_inputs`) and the writes of the examples and dead letters (:func:`write_outputs`).
The hybrid-sample pipeline (:mod:`pipelines.hybrid_samples.pipeline`) uses the hash split and the writes.

A pipeline subclasses :class:`ParseChunks` with its own header test, parser and serializer; the routing of each
line (header, row or dead letter) and the statistics it feeds are the same for all, so every pipeline can check
``rows_in == sum(rows_written) + rows_rejected``.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions
from apache_beam.options.value_provider import StaticValueProvider
from apache_beam.pvalue import TaggedOutput
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue

from pipelines.criteo import files
from pipelines.criteo.combiners import PipelineStatsFn
from pipelines.criteo.parse import Rejection, raw_text, strip_eol
from pipelines.criteo.read import ReadLines
from pipelines.criteo.tfrecord import ShardNaming, TFRecordBatchSink, batch_destination

SPLITS = ("train", "valid", "test")
DEADLETTER = "deadletter"
STATS = "stats"
SHARD_TEMPLATE = "-SSSSS-of-NNNNN"
#: Parsed rows folded into the statistics at a time. Small enough that the rows die young: holding a whole
#: chunk's rows (thousands of tuples and lists) until its end made them survive into the older GC generations
#: and cost two full collections (~0.4 s) per 100k rows; folding 256 at a time keeps the batched combiners fast.
STATS_ROWS = 256
#: Progress counters (rows sent to a split, rows rejected), counted once per chunk by :class:`ParseChunks`: as Beam
#: metrics (namespace ``tfrec``; what a runner reports while it runs remotely) and in this process (what
#: :class:`ProgressReporter` reads while the DirectRunner runs the pipeline in this process and ``run()`` blocks).
PROGRESS_NAMESPACE = "tfrec"
_ROWS_WRITTEN = Metrics.counter(PROGRESS_NAMESPACE, "rows_written")
_ROWS_REJECTED = Metrics.counter(PROGRESS_NAMESPACE, "rows_rejected")
_LOCAL_PROGRESS = [0, 0]  # rows written, rows rejected, in this process since it started


class HashSplitter:
    """Deterministic split and shard of a raw row from a keyed BLAKE2b (key from ``salt``) of its bytes.

    The 64-bit hash ``h`` picks the split by magnitude (``h < ratios[0] * 2**64`` is train, ...) and the shard as
    ``h % num_shards`` (its low bits, uniform within every split's range).
    """

    def __init__(self, ratios: Sequence[float], salt: str, num_shards: int = 1):
        self.key = hashlib.blake2b(salt.encode("utf-8"), digest_size=32).digest()
        self.t_train = int(ratios[0] * 2.0 ** 64)
        self.t_valid = int((ratios[0] + ratios[1]) * 2.0 ** 64)
        self.num_shards = num_shards

    def hash(self, raw: bytes) -> int:
        return int.from_bytes(hashlib.blake2b(raw, digest_size=8, key=self.key).digest(), "little")

    def split_of(self, h: int) -> str:
        return "train" if h < self.t_train else ("valid" if h < self.t_valid else "test")

    def __call__(self, raw: bytes) -> str:
        return self.split_of(self.hash(raw))

    def shard_of(self, h: int) -> int:
        return h % self.num_shards


class ParseChunks(beam.DoFn):
    """The parse step of the row pipelines: (file, [line, ...]) -> batches ``((split, shard), [serialized example,
    ...])``, dead-letter dicts on ``deadletter`` and one statistics accumulator per bundle on ``stats``.

    Header lines produce nothing. Every other line becomes a row or a :class:`pipelines.criteo.parse.Rejection`:
    a row goes to its split (``self.split`` when fixed, else by :class:`HashSplitter` on its bytes without the
    line break, which also gives the shard in both modes) and into that split's statistics; a rejection becomes
    one dead-letter dict (``source``, ``reason``, ``message``, ``row``) on ``deadletter`` and is counted by
    reason; so lines = headers + rows + rejections. A chunk of lines gives at most one batch per (split, shard)
    on the main output (Beam's per-element cost is paid per batch, not per row; a chunk holds a few thousand
    rows, so batches stay large unless ``num_shards`` nears that). Each bundle pre-aggregates the run's
    statistics (a :class:`pipelines.criteo.combiners.PipelineStatsFn`, :data:`STATS_ROWS` rows at a time) and
    emits that one accumulator on ``stats`` at the end of the bundle, which saves a Beam combiner edge per
    element.

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

    def process(self, element):
        file_name, lines = element
        is_header_fn, parse, serialize = self.row_functions(file_name)
        fixed, n = self.split, self.splitter.num_shards
        key, t_train, t_valid = self.splitter.key, self.splitter.t_train, self.splitter.t_valid
        blake2b, from_bytes = hashlib.blake2b, int.from_bytes  # HashSplitter.hash and split_of, inlined
        acc, fns = self.acc, self.stats.fns
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
        _count_progress(written, rejected)
        yield from out.items()

    def finish_bundle(self):
        acc, self.acc = self.stats.compact(self.acc), None
        yield TaggedOutput(STATS, WindowedValue(acc, GlobalWindow().max_timestamp(), [GlobalWindow()]))


def _count_progress(written: int, rejected: int) -> None:
    _LOCAL_PROGRESS[0] += written
    _LOCAL_PROGRESS[1] += rejected
    _ROWS_WRITTEN.inc(written)
    _ROWS_REJECTED.inc(rejected)


class ProgressReporter:
    """Prints a line every ``every`` seconds while a pipeline runs: rows read so far (sent to a split, rejected),
    their rate and the time since the start.

    The counts are those :class:`ParseChunks` adds once per chunk: from the run's Beam metrics when the runner
    returned a result while the pipeline runs (a remote runner), else from this process's counters (the
    DirectRunner runs the pipeline in this process and ``run()`` returns only at the end). Where neither is
    visible yet (a multi-process DirectRunner), the line says the pipeline is running and for how long.

    Args:
      printer: where the lines go.
      every: seconds between lines.
      what: the command, at the start of each line.
    """

    def __init__(self, printer: Callable[[str], None], every: float, what: str):
        self.printer, self.every, self.what = printer, float(every), what
        self.result = None  # the runner's PipelineResult, once ``run()`` returned it
        self._base = tuple(_LOCAL_PROGRESS)
        self._start = time.monotonic()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tfrec-progress", daemon=True)

    def __enter__(self) -> "ProgressReporter":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()

    def counts(self) -> Tuple[int, int]:
        """``(rows written, rows rejected)`` so far."""
        if self.result is not None:
            try:
                counters = self.result.metrics().query(MetricsFilter().with_namespace(PROGRESS_NAMESPACE))
                got = {c.key.metric.name: (c.committed if c.committed is not None else c.attempted) or 0
                       for c in counters["counters"]}
                if got:
                    return int(got.get("rows_written", 0)), int(got.get("rows_rejected", 0))
            except Exception:  # noqa: BLE001 - a runner without metrics: this process's counters
                pass
        return _LOCAL_PROGRESS[0] - self._base[0], _LOCAL_PROGRESS[1] - self._base[1]

    def line(self) -> str:
        """The progress line of now."""
        elapsed = time.monotonic() - self._start
        written, rejected = self.counts()
        read = written + rejected
        if not read:
            return f"{self.what}: running, {elapsed:.0f} s"
        return (f"{self.what}: {read:,} rows read ({written:,} to the splits, {rejected:,} rejected), "
                f"{read / max(elapsed, 1e-9):,.0f} rows/s, {elapsed:.0f} s")

    def _loop(self) -> None:
        while not self._done.wait(self.every):
            self.printer(self.line())


def _temp_directory(p: beam.Pipeline, out: str) -> str:
    """WriteToFiles' temporary directory, as it would pick it (under ``--temp_location``, else ``out``), but
    known here so that the last step can remove it (WriteToFiles leaves it behind, empty)."""
    base = p.options.view_as(GoogleCloudOptions).temp_location or out
    return files.join(base, f".temp-tfrecords-{uuid.uuid4().hex}")


def _merged(pcolls: list, label: str):
    """The one PCollection of ``pcolls``, or their ``Flatten`` (labelled ``label``) when there are several."""
    if len(pcolls) == 1:
        return pcolls[0]
    return pcolls | label >> beam.Flatten()


def parse_inputs(p: beam.Pipeline, groups: Dict[str, List[str]], shards: int,
                 parser: Callable[[Optional[str]], ParseChunks]) -> Tuple[Dict[str, object], object]:
    """Adds the reads and the parse step of every input group, and one empty batch per (split, shard).

    Args:
      p: the pipeline.
      groups: input group -> its files (``InputPlan.files``: the split name, or ``""`` for the hash split). Each
        group gets a :class:`pipelines.criteo.read.ReadLines` (``Read[group]``) and a ``ParDo`` of its parser
        (``Parse[group]``); the hash-split group is named ``inputs``.
      shards: shards per split.
      parser: the group's fixed split (``None`` in hash mode) -> its :class:`ParseChunks` DoFn.

    Returns:
      ``(result, bundle_stats)``: ``result`` holds the PCollections ``lines`` ((file, [line bytes]) chunks read),
      ``examples`` (batches ``((split, shard), [serialized example, ...])``, with one empty batch per (split,
      shard)) and ``deadletter`` (dead-letter dicts); ``bundle_stats`` holds the statistics accumulators, one per
      bundle, to merge with a :class:`pipelines.criteo.combiners.MergeAccumulatorsFn`.
    """
    all_lines, examples, dead, bundle_stats = [], [], [], []
    for group, paths in groups.items():
        name = group or "inputs"
        # Raw bytes in chunks of lines: undecodable bytes reach the parser (and the dead letter).
        lines = p | f"Read[{name}]" >> ReadLines(paths)
        parsed = lines | f"Parse[{name}]" >> beam.ParDo(parser(group or None)).with_outputs(
            DEADLETTER, STATS, main="examples")
        all_lines.append(lines)
        dead.append(parsed[DEADLETTER])
        bundle_stats.append(parsed[STATS])
        examples.append(parsed["examples"])
    # One empty batch per (split, shard): every shard file is written (and renamed into place) by WriteToFiles,
    # an empty split or shard as a valid, empty GZIP TFRecord file.
    examples.append(p | "EmptyShards" >> beam.Create([((s, k), []) for s in SPLITS for k in range(shards)]))
    result: Dict[str, object] = {"lines": _merged(all_lines, "AllLines"), "deadletter": _merged(dead, "AllDead"),
                                 "examples": _merged(examples, "AllExamples")}
    return result, _merged(bundle_stats, "AllBundleStats")


def write_outputs(p: beam.Pipeline, out: str, shards: int, examples, deadletter,
                  label: str = "WriteExamples") -> Tuple[object, object, str]:
    """Adds the writes of the examples and the dead letters under ``out``.

    Args:
      p: the pipeline.
      out: the output directory.
      shards: shards per split.
      examples: batches ``((split, shard), [serialized example, ...])``, written by one ``fileio.WriteToFiles``
        as ``<split>-SSSSS-of-NNNNN.tfrecord.gz`` (:class:`pipelines.criteo.tfrecord.ShardNaming`).
      deadletter: dead-letter dicts, written as JSON lines to ``deadletter/deadletter-00000-of-00001.jsonl``.
      label: the label of the examples' write.

    Returns:
      ``(written, dead_files, temp_dir)``: a ``fileio.FileResult`` per shard file (``destination`` is ``(split,
      shard)``, ``file_name`` the name under ``out``), the dead-letter file names, and the writes' temporary
      directory (left behind, empty, for the last step to remove).
    """
    temp_dir = _temp_directory(p, out)
    # max_writers_per_bundle=0: no per-bundle temporary files; every batch goes through WriteToFiles' sharded
    # path (one GroupByKey of the batches by destination), and shards=1 makes that one file per (split, shard).
    written = examples | label >> fileio.WriteToFiles(
        path=out, destination=batch_destination, file_naming=ShardNaming(shards),
        temp_directory=StaticValueProvider(str, temp_dir), sink=TFRecordBatchSink, shards=1, max_writers_per_bundle=0)
    dead_files = (deadletter
                  | "DeadJson" >> beam.Map(json.dumps).with_output_types(str)
                  | "WriteDead" >> beam.io.WriteToText(files.join(out, DEADLETTER, DEADLETTER),
                                                       file_name_suffix=".jsonl", num_shards=1,
                                                       shard_name_template=SHARD_TEMPLATE))
    return written, dead_files, temp_dir


def run_pipeline(build: Callable[[beam.Pipeline], object], options: PipelineOptions, what: str, runner: str,
                 progress: Optional[Callable[[str], None]] = None, progress_every: float = 5.0) -> None:
    """Builds a pipeline with ``build(p)``, runs it with ``options`` and waits for it to finish.

    Args:
      build: adds the transforms to the new pipeline.
      options: the pipeline options (the runner among them).
      what: the command, named in the error (``prepare``, ``prepare-hybrid``).
      runner: the configured runner, named in the error.
      progress: where a :class:`ProgressReporter` prints its lines while the pipeline runs (rows counted by
        :class:`ParseChunks`); ``None`` prints nothing.
      progress_every: seconds between progress lines.

    Raises:
      RuntimeError: the run ended in another state than ``DONE``.
    """
    p = beam.Pipeline(options=options)
    build(p)
    if progress is None:
        state = p.run().wait_until_finish()
    else:
        with ProgressReporter(progress, progress_every, what) as reporter:
            reporter.result = p.run()
            state = reporter.result.wait_until_finish()
    if state not in (None, beam.runners.runner.PipelineState.DONE):
        raise RuntimeError(f"{what}: the {runner} run ended in state {state}")
