"""The multi-task Beam pipeline: AliExpress / Ali-CCP CSV -> GZIP TFRecords of tf.Example + side files.

It is built on the shared stages (:mod:`pipelines.common`: the chunked byte reader, the hash split and shard, the
parse step, the shard sink, the statistics, the vocabularies per (field, bucket), the accounting against the sinks,
the runner options) and the Criteo pipeline's input planning. What differs is the row: two labels (click,
conversion) and the column roles of the CSV layout (:mod:`pipelines.multitask.parse`, read from the header).

Layout of ``<output>/`` (as the Criteo pipeline's): ``<split>-SSSSS-of-NNNNN.tfrecord.gz`` (raw feature values,
``click``, ``conversion``, ``weight`` = ``beta_pos`` on click positives), ``deadletter/deadletter-00000-of-00001
.jsonl`` (``source``, ``reason`` of :data:`pipelines.multitask.parse.REASONS`, ``message``, ``row``),
``vocab/<feature>.txt`` (train split, count >= ``min_count``), ``transform.json`` (fitted on train),
``schema.json`` (:class:`tfrec.features.MultiTaskSchema`, ``kind: multitask``) and ``stats.json`` (rows in /
written per split / rejected by reason, clicks, conversions, click rate, conversions per click, effective click
rate after ``beta_pos``, vocabulary sizes). The run checks ``rows_in == sum(rows_written) + rows_rejected`` with
the rows the sinks wrote (:func:`pipelines.common.rows.check_accounting`); header lines are not rows.

Every input file must have the same layout (the same header); an Ali-CCP file must start with its header.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Dict, Iterable, List, Optional

import apache_beam as beam

from pipelines.common.combiners import PipelineStatsFn
from pipelines.common.rows import COUNTS_FILE, build_rows, finalize_rows, output_directory
from pipelines.common.runner import run_pipeline
from pipelines.common.split import SPLITS, HashSplitter
from pipelines.common.stages import ParseChunks
from pipelines.criteo import files
from pipelines.criteo.example import add_features, new_example
from pipelines.criteo.pipeline import InputPlan, num_shards, pipeline_options, plan_inputs, split_description
from pipelines.multitask.parse import (FORMATS, REASONS, Layout, LayoutError, Row, file_layout, is_header,
                                       parse_line)
from tfrec.config import PrepareConfig
from tfrec.features import CLICK, CONVERSION, WEIGHT

OWNED_PATTERNS = ("train-*-of-*.tfrecord.gz", "valid-*-of-*.tfrecord.gz", "test-*-of-*.tfrecord.gz",
                  "deadletter/deadletter-*-of-*.jsonl", "vocab/*.txt", "schema.json", "transform.json",
                  "stats.json", COUNTS_FILE)


def to_example(row: Row, layout: Layout, beta_pos: float = 1.0) -> bytes:
    """Serializes a parsed row: ``click``, ``conversion`` (float 0/1), ``weight`` (``beta_pos`` when clicked,
    else 1.0; KDD 2024 Eq. 15 on the click task), then the raw dense and categorical values (absent when
    missing), under the layout's feature names. Deterministic bytes."""
    example = new_example()
    feature = example.features.feature
    feature[CLICK].float_list.value.append(float(row.click))
    feature[CONVERSION].float_list.value.append(float(row.conversion))
    feature[WEIGHT].float_list.value.append(beta_pos if row.click else 1.0)
    add_features(feature, [n for _, n in layout.dense], row.dense, [n for _, n in layout.categorical],
                 row.categorical)
    return example.SerializeToString(deterministic=True)


class LabelCountFn(beam.CombineFn):
    """Rows, clicks and conversions of a PCollection of :class:`Row`; outputs ``(rows, clicks, conversions)``."""

    def create_accumulator(self) -> list:
        return [0, 0, 0]

    def add_input(self, acc: list, row: Row) -> list:
        return self.add_inputs(acc, [row])

    def add_inputs(self, acc: list, rows: Iterable[Row]) -> list:
        for row in rows:
            acc[0] += 1
            acc[1] += row.click
            acc[2] += row.conversion
        return acc

    def merge_accumulators(self, accs: Iterable[list]) -> list:
        return [sum(column) for column in zip(*accs)]

    def extract_output(self, acc: list) -> tuple:
        return tuple(acc)


def plan_layout(cfg: PrepareConfig, plan: InputPlan) -> Layout:
    """The layout shared by every input file (read from each file's first line).

    Raises:
      LayoutError: a file whose header does not fit ``cfg.input_format``, or files with different headers.
    """
    layout: Optional[Layout] = None
    first_file = ""
    for paths in plan.files.values():
        for path in paths:
            this, _ = file_layout(cfg.input_format, files.first_line(path), path)
            if layout is None:
                layout, first_file = this, path
            elif this.columns != layout.columns:
                raise LayoutError(f"prepare: {path} has another header than {first_file} ({len(this.columns)} vs "
                                  f"{len(layout.columns)} columns); every input must have the same layout")
    assert layout is not None
    return layout


def _stats_fn(cfg: PrepareConfig, layout: Layout) -> PipelineStatsFn:
    schema = layout.schema()
    return PipelineStatsFn(cfg.min_count, cfg.numeric_transform, LabelCountFn, schema.categorical, schema.dense,
                           REASONS)


class ParseRows(ParseChunks):
    """:class:`pipelines.criteo.pipeline.ParseChunks` for multi-task files: the layout's header lines produce
    nothing; rows are parsed by :func:`pipelines.multitask.parse.parse_line` and serialized by
    :func:`to_example`, both under the layout."""

    def __init__(self, layout: dict, split: Optional[str], cfg: PrepareConfig, shards: int):
        self.layout_json, self.split, self.cfg, self.shards = layout, split, cfg, shards

    def setup(self):
        self.layout = Layout.from_json(self.layout_json)
        self.splitter = HashSplitter(self.cfg.split_ratios, self.cfg.split_salt, self.shards)
        self.stats = _stats_fn(self.cfg, self.layout)

    def row_functions(self, file_name):
        layout = self.layout
        return (functools.partial(is_header, layout=layout), functools.partial(parse_line, layout=layout),
                functools.partial(to_example, layout=layout, beta_pos=self.cfg.beta_pos))


def build(p: beam.Pipeline, cfg: PrepareConfig, plan: InputPlan, layout: Layout) -> Dict[str, object]:
    """Adds the whole pipeline to ``p``; returns the PCollections ``lines``, ``examples``, ``deadletter``,
    ``written`` and ``dead_written`` (as :func:`pipelines.criteo.pipeline.build`)."""
    cfg = cfg.with_format_defaults()
    shards, layout_json = num_shards(cfg, plan), layout.to_json()
    return build_rows(p, cfg.output, plan.files, shards, lambda split: ParseRows(layout_json, split, cfg, shards),
                      _stats_fn(cfg, layout), _HeaderlessCount(layout_json), cfg.min_count)


class _HeaderlessCount:
    """``(file, lines) -> rows among the lines``: every line but the layout's header lines."""

    def __init__(self, layout_json: dict):
        self.layout_json = layout_json
        self.layout = None

    def __call__(self, file_name: str, lines: List[bytes]) -> int:
        if self.layout is None:
            self.layout = Layout.from_json(self.layout_json)
        return len(lines) - sum(is_header(line, self.layout) for line in lines)

    def __getstate__(self):
        return {"layout_json": self.layout_json}

    def __setstate__(self, state):
        self.layout_json, self.layout = state["layout_json"], None


def _ratio(a: int, b: int) -> Optional[float]:
    return a / b if b else None


def finalize(cfg: PrepareConfig, plan: InputPlan, layout: Layout) -> Dict[str, object]:
    """After the run: checks the row accounting, writes ``stats.json`` and ``schema.json``, returns the stats.

    Raises:
      pipelines.common.rows.RowAccountingError: (a ``RuntimeError``) the counts do not add up: rows lost or
        repeated by the run (``rows_written`` is what the sinks wrote, checked against the parser's counts).
    """
    cfg = cfg.with_format_defaults()
    out = cfg.output
    counts = finalize_rows(out)
    clicks, convs = ({s: int(counts["splits"][s][i]) for s in SPLITS} for i in (1, 2))
    rows = {s: int(counts["written"][s]) for s in SPLITS}
    rejected = int(sum(counts["rejected_by_reason"].values()))
    rows_in = int(counts["rows_in"])
    click_rate = {s: _ratio(clicks[s], rows[s]) for s in SPLITS}
    b = cfg.beta_pos
    stats = {
        "rows_in": rows_in, "rows_written": rows, "rows_rejected": rejected,
        "rejected_by_reason": counts["rejected_by_reason"],
        "clicks": clicks, "conversions": convs, "click_rate": click_rate,
        "conversion_rate": {s: _ratio(convs[s], clicks[s]) for s in SPLITS},
        "ctcvr_rate": {s: _ratio(convs[s], rows[s]) for s in SPLITS},
        "effective_click_rate": {s: None if r is None else b * r / (b * r + 1.0 - r) for s, r in click_rate.items()},
        "beta_pos": b, "min_count": cfg.min_count, "vocabulary_sizes": counts["vocabulary_sizes"],
        "numeric_transform": cfg.numeric_transform,
        "split": split_description(cfg, plan),
        "files": counts["files"], "deadletter_files": counts["deadletter_files"], "num_shards": num_shards(cfg, plan),
        "input_format": cfg.input_format, "columns": list(layout.columns),
        "inputs": [f for fs in plan.files.values() for f in fs],
    }
    files.write_json(files.join(out, "schema.json"), layout.schema().to_json())
    files.write_json(files.join(out, "stats.json"), stats)
    return stats


def run(cfg: PrepareConfig, progress: Optional[Callable[[str], None]] = None,
        progress_every: float = 5.0) -> Dict[str, object]:
    """Runs the multi-task pipeline (``cfg.input_format`` ``aliexpress`` or ``aliccp``) on ``cfg.runner``,
    waits, checks the counts, returns the stats; ``progress`` and ``progress_every`` as in
    :func:`pipelines.criteo.pipeline.run`.

    Raises:
      tfrec.config.ConfigError: an invalid config.
      ValueError: another input format, no inputs, an empty ``output``, or a header that does not fit
        (:class:`LayoutError`).
      FileNotFoundError: an input pattern that matches nothing.
      tfrec.config.ConfigError: a refused DirectRunner mode (:func:`pipelines.common.runner.check_direct_mode`).
      RuntimeError: the run failed, or the row accounting does not add up.
    """
    cfg.validate()
    if cfg.input_format not in FORMATS:
        raise ValueError(f"`prepare.input_format` must be one of {FORMATS} for the multi-task pipeline. "
                         f"Received: prepare.input_format={cfg.input_format!r}")
    if not cfg.output:
        raise ValueError("prepare.output is empty; set it to the output directory of the prepared dataset")
    options = pipeline_options(cfg)
    plan = plan_inputs(cfg)
    layout = plan_layout(cfg, plan)
    cfg = dataclasses.replace(cfg.with_format_defaults(), output=output_directory(cfg.output, OWNED_PATTERNS))
    run_pipeline(lambda p: build(p, cfg, plan, layout), options, "prepare", cfg.runner, progress, progress_every)
    return finalize(cfg, plan, layout)
