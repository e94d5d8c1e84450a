"""The Criteo Beam pipeline: raw Kaggle TSV / criteo_x1 CSV -> GZIP TFRecords of tf.Example + side files.

Layout of ``<output>/`` (``N`` = ``num_shards``):

* ``train-SSSSS-of-NNNNN.tfrecord.gz``, ``valid-...``, ``test-...``: serialized ``tf.train.Example`` (raw
  values, ``label``, ``weight``; see :func:`pipelines.criteo.example.to_example`). A row's shard is a
  deterministic function of its bytes (the keyed hash of the split, modulo ``N``), so a row lands in the same
  file on every run. Every split gets exactly ``N`` shards, an empty split or shard a valid, empty GZIP
  TFRecord file (``stats.json`` says ``rows_written[split] == 0``). ``num_shards`` 0 chooses the number from
  the input size (:func:`num_shards`: one shard per :data:`SHARD_INPUT_BYTES` of input, at least one).
* ``deadletter/deadletter-00000-of-00001.jsonl``: one JSON object per rejected line: ``source`` (file),
  ``reason`` (a code of :data:`pipelines.criteo.parse.REASONS`), ``message``, ``row`` (the raw line, undecodable
  bytes as ``\\xNN``). Always written (possibly empty).
* ``vocab/C1.txt`` .. ``vocab/C26.txt``: train-split tokens with count >= ``min_count``, one per line, by count
  descending then token ascending; a missing value counts as ``tfrec.features.MISSING_TOKEN``
  (:mod:`pipelines.common.vocab`: counted per (field, bucket of values), cut, then sorted per field).
* ``transform.json``: ``tfrec.transforms.ScaleAccumulator(numeric_transform).params()`` fitted on train.
* ``schema.json``: ``tfrec.features.CRITEO.to_json()``.
* ``stats.json``: row accounting, positive rates, vocabulary sizes, split and input description.

Graph (:func:`pipelines.common.rows.build_rows`): matched files -> :class:`pipelines.common.read.ReadLines` (raw
bytes, chunks of lines, splittable) -> :class:`ParseRows` (parse once; split by hash or by file, shard by hash;
serialize; one batch of serialized examples per (chunk, split, shard); statistics and vocabulary counts
pre-aggregated per bundle) -> the shard sink (:class:`pipelines.common.sink.WriteShards`: parts written per
bundle, no grouping of records, so memory stays flat in the number of rows) for the examples and the dead letters;
``RowsIn`` counts the lines read independently of the parser.

The last pipeline step writes ``transform.json`` and ``_counts.json``; :func:`finalize` (after the run) checks
``rows_in == sum(rows_written) + rows_rejected`` with ``rows_written`` what the sinks wrote, and per split that the
sink wrote every row the parser sent it (:func:`pipelines.common.rows.check_accounting`), writes ``stats.json`` and
``schema.json`` and removes ``_counts.json``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable, Dict, List, Optional, Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.common import runner as common_runner
from pipelines.common.combiners import PipelineStatsFn
from pipelines.common.rows import (COUNTS_FILE, RowAccountingError, build_rows, check_accounting, finalize_rows,
                                   output_directory)
from pipelines.common.runner import count_progress, run_pipeline
from pipelines.common.split import SPLITS, HashSplitter
from pipelines.common.stages import DEADLETTER, ParseChunks
from pipelines.common.vocab import FLUSH_VALUES
from pipelines.criteo import files
from pipelines.criteo.example import to_example
from pipelines.criteo.fast import column_batches
from pipelines.criteo.parse import KAGGLE, X1, is_header, parse_line
from tfrec.config import ConfigError, PrepareConfig
from tfrec.features import CRITEO

#: Shards per split when ``num_shards`` is 0 and the input size is unknown.
DEFAULT_NUM_SHARDS = 1
#: Input bytes per output shard when ``num_shards`` is 0 (Criteo Kaggle's 11 GB train.txt: 42 shards per split).
SHARD_INPUT_BYTES = 256 << 20
_HASH_GROUP = ""  # the input group of the hash split (all of ``inputs``)

__all__ = ["COUNTS_FILE", "DEADLETTER", "SPLITS", "HashSplitter", "InputPlan", "NoUsableDataError",
           "RowAccountingError", "build", "check_row_accounting", "check_usable", "finalize", "num_shards",
           "pipeline_options", "plan_inputs", "run", "split_description"]


# ----------------------------------------------------------------------------------------------- inputs


@dataclasses.dataclass
class InputPlan:
    """The resolved inputs of a run.

    Attributes:
      mode: ``hash`` (``inputs`` split by a hash of the row) or ``files`` (one file list per split).
      patterns: group -> patterns; the group is ``""`` in hash mode, else a split name.
      files: group -> matched files.
      formats: matched file -> ``kaggle`` or ``x1`` (sniffed when ``input_format`` is ``auto``).
    """

    mode: str
    patterns: Dict[str, List[str]]
    files: Dict[str, List[str]]
    formats: Dict[str, str]


def plan_inputs(cfg: PrepareConfig) -> InputPlan:
    """Matches the input patterns, checks every file's start and picks each file's format.

    Raises:
      tfrec.config.ConfigError: no inputs, or a file listed for two splits (also under two spellings of its path).
      FileNotFoundError: a pattern that matches no file (named in the message).
      pipelines.criteo.parse.InputError: a directory or an archive given as input; for the Criteo formats, a CSV
        header that does not fit (:func:`pipelines.criteo.parse.file_format`).
    """
    if cfg.train or cfg.valid or cfg.test:
        mode = "files"
        patterns = {s: list(getattr(cfg, s)) for s in SPLITS if getattr(cfg, s)}
    elif cfg.inputs:
        mode, patterns = "hash", {_HASH_GROUP: list(cfg.inputs)}
    else:
        raise ConfigError("prepare: no inputs given; set prepare.inputs (hash split) or prepare.train / "
                          "prepare.valid / prepare.test (one file list per split)")
    matched = {g: files.match_inputs(ps, f"prepare.{g or 'inputs'}") for g, ps in patterns.items()}
    seen: Dict[str, str] = {}
    for group, paths in matched.items():
        for path in paths:
            key = files.same_file_key(path)
            if key in seen:
                raise ConfigError(f"prepare: {path} is listed for both {seen[key]} and {group}; every input file "
                                  "belongs to one split")
            seen[key] = group
    paths = [path for ps in matched.values() for path in ps]
    if cfg.input_format in ("auto", KAGGLE, X1):
        formats = {path: files.sniff_file(path, cfg.input_format) for path in paths}
    else:  # a multi-task format: its own pipeline reads each file's header (pipelines.multitask)
        for path in paths:
            files.read_head(path)  # no archive
        formats = dict.fromkeys(paths, cfg.input_format)
    return InputPlan(mode, patterns, matched, formats)


class FileFormats:
    """file name -> format; a file the plan does not know (a runner-rewritten path) is sniffed on first use."""

    def __init__(self, input_format: str, formats: Dict[str, str]):
        self.input_format = input_format
        self.formats = dict(formats)

    def __call__(self, file_name: str) -> str:
        if self.input_format != "auto":
            return self.input_format
        fmt = self.formats.get(file_name)
        if fmt is None:
            fmt = self.formats[file_name] = files.sniff_file(file_name)
        return fmt

    def rows_in(self, file_name: str, lines: List[bytes]) -> int:
        """Lines that are rows: all but the headers of an x1 file."""
        if self(file_name) == X1:
            return len(lines) - sum(map(is_header, lines))
        return len(lines)


def num_shards(cfg: PrepareConfig, plan: Optional[InputPlan] = None) -> int:
    """Shards per split: ``cfg.num_shards``; when it is 0, one per :data:`SHARD_INPUT_BYTES` of the plan's input
    files (at least one), or :data:`DEFAULT_NUM_SHARDS` without a plan."""
    if cfg.num_shards:
        return cfg.num_shards
    if plan is None:
        return DEFAULT_NUM_SHARDS
    size = files.total_bytes(f for fs in plan.files.values() for f in fs)
    return max(DEFAULT_NUM_SHARDS, math.ceil(size / SHARD_INPUT_BYTES))


class ParseRows(ParseChunks):
    """:class:`ParseChunks` for Criteo files: x1 files start with a header line, Kaggle files have none; rows are
    parsed by :func:`pipelines.criteo.parse.parse_line` in the file's format and serialized by
    :func:`pipelines.criteo.example.to_example`.

    Kaggle chunks take the column path first (:func:`pipelines.criteo.fast.column_batches`: the same rows, bytes
    and statistics at a fraction of the cost); the lines it leaves (another field count, negative or long numbers,
    bad values, ...) go through the row parser above, which also rejects them with their reasons."""

    def __init__(self, formats: FileFormats, split: Optional[str], ratios: Sequence[float], salt: str,
                 min_count: int, numeric_transform: str, beta_pos: float, num_shards: int = 1):
        self.formats = formats
        self.beta_pos = beta_pos
        self.split = split
        self.ratios = list(ratios)
        self.salt = salt
        self.min_count = min_count
        self.numeric_transform = numeric_transform
        self.num_shards = num_shards

    def setup(self):
        self.splitter = HashSplitter(self.ratios, self.salt, self.num_shards)
        self.stats = PipelineStatsFn(self.min_count, self.numeric_transform)

    def row_functions(self, file_name):
        fmt = self.formats(file_name)
        return (is_header if fmt == X1 else None, functools.partial(parse_line, fmt=fmt),
                functools.partial(to_example, beta_pos=self.beta_pos))

    def process(self, element):
        file_name, lines = element
        if self.formats(file_name) != KAGGLE:
            yield from super().process(element)
            return
        sp = self.splitter
        raws = [line.rstrip(b"\r\n") for line in lines]
        batches, others = column_batches(raws, self.beta_pos, sp.key, sp.t_train, sp.t_valid, sp.num_shards,
                                         self.split, self.acc, self.stats.fns, list(self.vocab.counts.values()))
        count_progress(sum(map(len, batches.values())), 0)
        yield from batches.items()
        if others:
            yield from super().process((file_name, [lines[i] for i in others]))
        elif self.vocab.distinct() > FLUSH_VALUES:
            yield from super().process((file_name, []))  # (emits the vocabulary counts past FLUSH_VALUES)


# ----------------------------------------------------------------------------------------------- pipeline


def build(p: beam.Pipeline, cfg: PrepareConfig, plan: Optional[InputPlan] = None) -> Dict[str, object]:
    """Adds the whole pipeline to ``p`` (reads, parse, split, writes, statistics, side files).

    Args:
      p: the pipeline.
      cfg: the config; ``cfg.output`` must be set (a directory, created by the writers).
      plan: resolved inputs (:func:`plan_inputs`), computed here when omitted.

    Returns:
      The main PCollections by name: ``lines`` ((file, [line bytes]) chunks read), ``examples`` (batches
      ``((split, shard), [serialized tf.Example, ...])``), ``deadletter`` (dicts), ``written`` (a
      :class:`pipelines.common.sink.ShardResult` per shard file: ``destination`` ``(split, shard)``, ``file_name``
      under ``cfg.output``, ``records`` written) and ``dead_written``.
    """
    plan = plan or plan_inputs(cfg)
    cfg = cfg.with_format_defaults(plan.formats.values())
    shards = num_shards(cfg, plan)
    formats = FileFormats(cfg.input_format, plan.formats)
    return build_rows(
        p, cfg.output, plan.files, shards,
        lambda split: ParseRows(formats, split, cfg.split_ratios, cfg.split_salt, cfg.min_count,
                                cfg.numeric_transform, cfg.beta_pos, shards),
        PipelineStatsFn(cfg.min_count, cfg.numeric_transform), formats.rows_in, cfg.min_count)


# ----------------------------------------------------------------------------------------------- run


def pipeline_options(cfg: PrepareConfig) -> PipelineOptions:
    """``--runner cfg.runner`` then ``cfg.beam_args`` (which win), through
    :func:`pipelines.common.runner.pipeline_options`: one in-memory DirectRunner worker by default, its parallel
    modes refused, tfrec staged for remote workers.

    Raises:
      tfrec.config.ConfigError: a refused DirectRunner mode, or a remote runner that cannot get tfrec.
    """
    return common_runner.pipeline_options(cfg.runner, cfg.beam_args)


def _rate(positives: int, rows: int) -> Optional[float]:
    return positives / rows if rows else None


def _effective_rate(p: Optional[float], beta: float) -> Optional[float]:
    return None if p is None else beta * p / (beta * p + 1.0 - p)


def check_row_accounting(rows_in: int, written: Dict[str, int], rejected: int, counts_path: str) -> None:
    """Checks ``rows_in == sum(rows_written) + rows_rejected`` for a finished run (rows written as counted by the
    sinks; :func:`pipelines.common.rows.check_accounting` also checks them against the parser's counts).

    Raises:
      RowAccountingError: the sum does not add up (rows lost or duplicated).
    """
    check_accounting("prepare", rows_in, written, rejected, written, rejected, counts_path)


class NoUsableDataError(RuntimeError):
    """A finished run wrote no usable training data (no rows, every row rejected, or an empty train or valid
    split)."""


def check_usable(stats: Dict[str, object], output: str) -> None:
    """Checks that a finished run (its ``stats.json`` content) can be trained on: rows read, not all rejected,
    and rows in the train and valid splits (training needs the valid split for early stopping and the best
    weights). An empty test split is allowed (given no test files, there is none).

    Args:
      stats: the run's statistics (``rows_in``, ``rows_written``, ``rows_rejected``, ``rejected_by_reason``,
        ``split``, ``inputs``).
      output: the output directory, named in the message.

    Raises:
      NoUsableDataError: one line saying why.
    """
    rows_in, rejected = int(stats["rows_in"]), int(stats["rows_rejected"])
    written = {s: int(n) for s, n in stats["rows_written"].items()}
    if rows_in == 0:
        inputs = stats.get("inputs") or []
        raise NoUsableDataError(f"prepare: no rows in the input ({len(inputs)} file(s), none with a row: "
                                f"{', '.join(inputs[:3])}{' ...' if len(inputs) > 3 else ''}); nothing to train on")
    if rejected == rows_in:
        reasons = sorted(((n, r) for r, n in stats["rejected_by_reason"].items() if n), reverse=True)
        raise NoUsableDataError(f"prepare: all {rows_in:,} rows were rejected ("
                                + ", ".join(f"{r} {n:,}" for n, r in reasons)
                                + f"); see {files.join(output, DEADLETTER)}/ for each row and its reason")
    split = stats.get("split") or {}
    for name in ("train", "valid"):
        if written[name] == 0:
            how = ("the hash split put none of the rows there; give more rows or change prepare.split_ratios "
                   f"({split.get('ratios')})" if split.get("mode") == "hash"
                   else f"its files have no valid row; give {name} rows (--{name})")
            raise NoUsableDataError(f"prepare: the {name} split is empty (rows written: "
                                    + ", ".join(f"{s} {written[s]:,}" for s in SPLITS)
                                    + f"; {rejected:,} rejected): {how}")


def split_description(cfg: PrepareConfig, plan: InputPlan) -> Dict[str, object]:
    """The ``split`` entry of ``stats.json``: the mode, with the ratios and salt of the hash split (None in files
    mode) or, in files mode, the input files of each split."""
    hash_mode = plan.mode == "hash"
    return {"mode": plan.mode, "ratios": list(cfg.split_ratios) if hash_mode else None,
            "salt": cfg.split_salt if hash_mode else None,
            **({} if hash_mode else {"inputs": {s: plan.files.get(s, []) for s in SPLITS}})}


def finalize(cfg: PrepareConfig, plan: InputPlan) -> Dict[str, object]:
    """After the run: checks the row accounting, writes ``stats.json`` and ``schema.json``, returns the stats.

    ``rows_written`` is what the sinks wrote (checked against what the parser sent to each split).

    Raises:
      RowAccountingError: (a ``RuntimeError``) the counts do not add up: rows lost or repeated by the run.
    """
    cfg = cfg.with_format_defaults(plan.formats.values())
    out = cfg.output
    counts = finalize_rows(out)
    written = {s: int(counts["written"][s]) for s in SPLITS}
    positives = {s: int(counts["splits"][s][1]) for s in SPLITS}
    rejected = int(sum(counts["rejected_by_reason"].values()))
    rates = {s: _rate(positives[s], written[s]) for s in SPLITS}
    stats = {
        "rows_in": int(counts["rows_in"]),
        "rows_written": written,
        "rows_rejected": rejected,
        "rejected_by_reason": counts["rejected_by_reason"],
        "positives": positives,
        "positive_rate": rates,
        "effective_positive_rate": {s: _effective_rate(rates[s], cfg.beta_pos) for s in SPLITS},
        "beta_pos": cfg.beta_pos,
        "min_count": cfg.min_count,
        "vocabulary_sizes": counts["vocabulary_sizes"],
        "numeric_transform": cfg.numeric_transform,
        "split": split_description(cfg, plan),
        "files": counts["files"],
        "deadletter_files": counts["deadletter_files"],
        "num_shards": num_shards(cfg, plan),
        "input_format": cfg.input_format,
        "input_formats": plan.formats,
        "inputs": [f for fs in plan.files.values() for f in fs],
    }
    files.write_json(files.join(out, "schema.json"), CRITEO.to_json())
    files.write_json(files.join(out, "stats.json"), stats)
    return stats


def run(cfg: PrepareConfig, progress: Optional[Callable[[str], None]] = None,
        progress_every: float = 5.0) -> Dict[str, object]:
    """Runs the pipeline on ``cfg.runner`` (+ ``cfg.beam_args``), waits, checks the counts, returns the stats.

    Files of a previous run under ``cfg.output`` (the pipeline's own names only) are removed first.

    Args:
      cfg: the config.
      progress: where progress lines go while the pipeline runs (rows read, written, rejected; every
        ``progress_every`` seconds); ``None`` prints none.
      progress_every: seconds between progress lines.

    Raises:
      tfrec.config.ConfigError: an invalid config, no inputs, a file listed for two splits, a refused
        DirectRunner mode (:func:`pipelines.common.runner.check_direct_mode`).
      pipelines.criteo.parse.InputError: a directory or archive as input, a CSV header that does not fit.
      ValueError: an empty ``output``.
      FileNotFoundError: an input path or pattern that matches nothing (named in the message).
      RuntimeError: the run failed, or the row accounting does not add up (:class:`RowAccountingError`).
    """
    cfg.validate()
    if not cfg.output:
        raise ValueError("prepare.output is empty; set it to the output directory of the prepared dataset")
    options = pipeline_options(cfg)
    plan = plan_inputs(cfg)
    cfg = dataclasses.replace(cfg.with_format_defaults(plan.formats.values()),
                              output=output_directory(cfg.output, files.OWNED_PATTERNS))
    run_pipeline(lambda p: build(p, cfg, plan), options, "prepare", cfg.runner, progress, progress_every)
    return finalize(cfg, plan)
