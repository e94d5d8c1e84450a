"""The Criteo Beam pipeline: raw Kaggle TSV / criteo_x1 CSV -> GZIP TFRecords of tf.Example + side files.

Layout of ``<output>/`` (``N`` = ``num_shards``):

* ``train-SSSSS-of-NNNNN.tfrecord.gz``, ``valid-...``, ``test-...``: serialized ``tf.train.Example`` (raw
  values, ``label``, ``weight``; see :func:`pipelines.criteo.example.to_example`). A row's shard is a
  deterministic function of its bytes (the keyed hash of the split, modulo ``N``), so a row lands in the same
  file on every run. Every split gets exactly ``N`` shards, an empty split or shard a valid, empty GZIP
  TFRecord file (``stats.json`` says ``rows_written[split] == 0``). ``num_shards`` 0 means
  :data:`DEFAULT_NUM_SHARDS` (1) shard per split: the writer shards by the row's hash, so the runner has no
  bundle-based choice to make; set ``num_shards`` for parallel reads of a large dataset.
* ``deadletter/deadletter-00000-of-00001.jsonl``: one JSON object per rejected line: ``source`` (file),
  ``reason`` (a code of :data:`pipelines.criteo.parse.REASONS`), ``message``, ``row`` (the raw line, undecodable
  bytes as ``\\xNN``). Always written (possibly empty).
* ``vocab/C1.txt`` .. ``vocab/C26.txt``: train-split tokens with count >= ``min_count``, one per line, by count
  descending then token ascending; a missing value counts as ``tfrec.features.MISSING_TOKEN``.
* ``transform.json``: ``tfrec.transforms.ScaleAccumulator(numeric_transform).params()`` fitted on train.
* ``schema.json``: ``tfrec.features.CRITEO.to_json()``.
* ``stats.json``: row accounting, positive rates, vocabulary sizes, split and input description.

Graph: matched files -> :class:`pipelines.criteo.read.ReadLines` (raw bytes, chunks of lines, splittable) ->
:class:`ParseRows` (parse once; split by hash or by file, shard by hash; serialize; one batch of serialized
examples per (chunk, split, shard); pre-aggregate the statistics per bundle with the CombineFns of
:mod:`pipelines.criteo.combiners`) -> one ``fileio.WriteToFiles`` of the batches for all splits (destination
``(split, shard)``, the batched GZIP TFRecord sink of :mod:`pipelines.criteo.tfrecord`, which says why it
replaces ``WriteToTFRecord``), ``WriteToText`` for the dead letters; ``RowsIn`` counts the lines read
independently of the parser.

Every count is computed inside the pipeline by combiners; a last pipeline step writes the vocabularies,
``transform.json`` and ``_counts.json``, and :func:`finalize` (after the run) checks
``rows_in == sum(rows_written) + rows_rejected``, writes ``stats.json`` and ``schema.json`` and removes
``_counts.json``.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Callable, Dict, List, Optional, Sequence

import apache_beam as beam
from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions
from apache_beam.pvalue import AsList, AsSingleton

from pipelines.criteo import files
from pipelines.criteo.combiners import MergeAccumulatorsFn, PipelineStatsFn, RowsInFn
from pipelines.criteo.example import to_example
from pipelines.criteo.parse import KAGGLE, X1, is_header, parse_line
from pipelines.criteo.stages import (DEADLETTER, SPLITS, HashSplitter, ParseChunks, parse_inputs, run_pipeline,
                                     write_outputs)
from tfrec.config import ConfigError, PrepareConfig
from tfrec.features import CRITEO, CRITEO_CATEGORICAL

COUNTS_FILE = "_counts.json"
#: Shards per split when ``num_shards`` is 0.
DEFAULT_NUM_SHARDS = 1
_HASH_GROUP = ""  # the input group of the hash split (all of ``inputs``)


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


def num_shards(cfg: PrepareConfig) -> int:
    """Shards per split: ``cfg.num_shards``, or :data:`DEFAULT_NUM_SHARDS` when it is 0."""
    return cfg.num_shards or DEFAULT_NUM_SHARDS


class ParseRows(ParseChunks):
    """:class:`ParseChunks` for Criteo files: x1 files start with a header line, Kaggle files have none; rows are
    parsed by :func:`pipelines.criteo.parse.parse_line` in the file's format and serialized by
    :func:`pipelines.criteo.example.to_example`."""

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


# ----------------------------------------------------------------------------------------------- pipeline


def build(p: beam.Pipeline, cfg: PrepareConfig, plan: Optional[InputPlan] = None) -> Dict[str, object]:
    """Adds the whole pipeline to ``p`` (reads, parse, split, writes, statistics, side files).

    Args:
      p: the pipeline.
      cfg: the config; ``cfg.output`` must be set (a directory, created by the writers).
      plan: resolved inputs (:func:`plan_inputs`), computed here when omitted.

    Returns:
      The main PCollections by name: ``lines`` ((file, [line bytes]) chunks read), ``examples`` (batches
      ``((split, shard), [serialized tf.Example, ...])``, including one empty batch per (split, shard)),
      ``deadletter`` (dicts), ``written`` (a ``fileio.FileResult`` per shard file; ``destination`` is
      ``(split, shard)``, ``file_name`` the name under ``cfg.output``).
    """
    plan = plan or plan_inputs(cfg)
    out = cfg.output
    shards = num_shards(cfg)
    formats = FileFormats(cfg.input_format, plan.formats)
    result, bundle_stats = parse_inputs(p, plan.files, shards, lambda split: ParseRows(
        formats, split, cfg.split_ratios, cfg.split_salt, cfg.min_count, cfg.numeric_transform, cfg.beta_pos,
        shards))
    result["written"], dead_files, temp_dir = write_outputs(p, out, shards, result["examples"], result["deadletter"])
    rows_in = result["lines"] | "RowsIn" >> beam.CombineGlobally(RowsInFn(formats.rows_in))
    stats = bundle_stats | "Stats" >> beam.CombineGlobally(
        MergeAccumulatorsFn(PipelineStatsFn(cfg.min_count, cfg.numeric_transform)))
    _ = (p | "Once" >> beam.Create([None])
         | "WriteSideFiles" >> beam.Map(
             _write_side_files, out, temp_dir, AsSingleton(rows_in), AsSingleton(stats),
             AsList(result["written"]), AsList(dead_files)))
    return result


def _write_side_files(_, out, temp_dir, rows_in, stats, written, dead_files):
    """The last pipeline step: vocab/C*.txt, transform.json and the raw counts (``_counts.json``); removes the
    (by now empty) temporary directory of the TFRecord writes."""
    try:
        FileSystems.delete([temp_dir])
    except BeamIOError:
        pass  # already gone (a retried step), or nothing was ever created there
    (train_rows, train_pos), vocabs, transform = stats["train"]
    valid, test, reasons = stats["valid"], stats["test"], stats[DEADLETTER]
    sizes = {}
    for field in CRITEO_CATEGORICAL:
        tokens = [t for t, _ in vocabs[field]]
        sizes[field] = len(tokens)
        files.write_bytes(files.join(out, "vocab", f"{field}.txt"),
                          "".join(t + "\n" for t in tokens).encode("utf-8"))
    files.write_json(files.join(out, "transform.json"), transform)
    shard_files = {s: [] for s in SPLITS}
    for r in written:
        shard_files[r.destination[0]].append(r.file_name)  # ShardNaming's name, relative to ``out``
    files.write_json(files.join(out, COUNTS_FILE), {
        "rows_in": rows_in,
        "splits": {"train": [train_rows, train_pos], "valid": list(valid), "test": list(test)},
        "rejected_by_reason": reasons,
        "vocabulary_sizes": sizes,
        "files": {s: sorted(fs) for s, fs in shard_files.items()},
        "deadletter_files": sorted(files.relative(f, out) for f in dead_files),
    })


# ----------------------------------------------------------------------------------------------- run


def pipeline_options(cfg: PrepareConfig) -> PipelineOptions:
    """``--runner cfg.runner`` then ``cfg.beam_args`` (which win). The DirectRunner defaults to one in-memory
    worker unless ``beam_args`` say otherwise (measured fastest for this CPU-bound, pure-Python pipeline)."""
    args = ["--runner", cfg.runner, *cfg.beam_args]
    options = PipelineOptions(args)
    direct = options.view_as(DirectOptions)
    given = " ".join(cfg.beam_args)
    if "--direct_running_mode" not in given:
        direct.direct_running_mode = "in_memory"
    if "--direct_num_workers" not in given:
        direct.direct_num_workers = 1
    return options


def _rate(positives: int, rows: int) -> Optional[float]:
    return positives / rows if rows else None


def _effective_rate(p: Optional[float], beta: float) -> Optional[float]:
    return None if p is None else beta * p / (beta * p + 1.0 - p)


def check_row_accounting(rows_in: int, written: Dict[str, int], rejected: int, counts_path: str) -> None:
    """Checks ``rows_in == sum(rows_written) + rows_rejected`` for a finished run.

    Args:
      rows_in: the rows read (header lines excluded).
      written: rows written per split.
      rejected: rows sent to the dead letter.
      counts_path: the run's raw counts file, named in the error.

    Raises:
      RuntimeError: the sum does not add up (rows lost or duplicated).
    """
    if rows_in != sum(written.values()) + rejected:
        raise RuntimeError(f"prepare: row accounting failed: rows_in={rows_in} != rows_written "
                           f"{sum(written.values())} {written} + rows_rejected {rejected}; see {counts_path}")


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

    Raises:
      RuntimeError: ``rows_in != sum(rows_written) + rows_rejected`` (rows lost or duplicated).
    """
    out = cfg.output
    counts_path = files.join(out, COUNTS_FILE)
    counts = files.read_json(counts_path)
    written = {s: int(counts["splits"][s][0]) for s in SPLITS}
    positives = {s: int(counts["splits"][s][1]) for s in SPLITS}
    rejected = int(sum(counts["rejected_by_reason"].values()))
    rows_in = int(counts["rows_in"])
    check_row_accounting(rows_in, written, rejected, counts_path)
    rates = {s: _rate(positives[s], written[s]) for s in SPLITS}
    stats = {
        "rows_in": rows_in,
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
        "num_shards": num_shards(cfg),
        "input_format": cfg.input_format,
        "input_formats": plan.formats,
        "inputs": [f for fs in plan.files.values() for f in fs],
    }
    files.write_json(files.join(out, "schema.json"), CRITEO.to_json())
    files.write_json(files.join(out, "stats.json"), stats)
    beam.io.filesystems.FileSystems.delete([counts_path])
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
      tfrec.config.ConfigError: an invalid config, no inputs, or a file listed for two splits.
      pipelines.criteo.parse.InputError: a directory or archive as input, a CSV header that does not fit.
      ValueError: an empty ``output``.
      FileNotFoundError: an input path or pattern that matches nothing (named in the message).
      RuntimeError: the run failed or the row accounting does not add up.
    """
    cfg.validate()
    if not cfg.output:
        raise ValueError("prepare.output is empty; set it to the output directory of the prepared dataset")
    plan = plan_inputs(cfg)
    if "://" not in cfg.output:
        cfg = dataclasses.replace(cfg, output=os.path.abspath(cfg.output))
    files.delete_owned(cfg.output)
    run_pipeline(lambda p: build(p, cfg, plan), pipeline_options(cfg), "prepare", cfg.runner, progress, progress_every)
    return finalize(cfg, plan)
