"""The HCCP hybrid-sample Beam pipeline: cascade request logs -> one ExampleListWithContext per request.

Inputs: request logs and an item table, JSON lines in the format of ``tfrec.simulation.cascade``.

Layout of ``<output>/`` (``N`` = ``num_shards``):

* ``train-SSSSS-of-NNNNN.tfrecord.gz``, ``valid-...``, ``test-...``: serialized
  ``tensorflow_serving.ExampleListWithContext``, one per request (``tfrec.features.HCCP``; built by
  :mod:`pipelines.hybrid_samples.samples`). The split is a keyed hash of ``request_id`` (``split_by: hash``) or the
  request's day (``split_by: day``), the shard the same hash modulo ``N``. With ``full_eval_lists`` valid and test
  lists keep every ranking candidate (all rates 1) and every pre-ranking candidate.
* ``deadletter/deadletter-00000-of-00001.jsonl``: one JSON object per rejected line: ``source`` (``requests`` or
  ``items``), ``file``, ``reason`` (a code of :data:`pipelines.hybrid_samples.validate.REASONS`), ``message``,
  ``row`` (the raw line, undecodable bytes as ``\\xNN``).
* ``schema.json``: ``tfrec.features.HCCP.to_json()``; ``stats.json``: requests in / written per split / rejected by
  reason (``requests_in == sum(requests_written) + requests_rejected`` is checked), items per sample type and
  split, label rates on impressions, list sizes, item-table counts.
* ``items.jsonl``: the item table the lists were built from (valid lines only, one per item id, sorted by id;
  ``item_id``, ``category``, ``price``), the input of ``tfrec export --items`` and of the pipeline's export of
  precomputed item embeddings.

A run that writes no request (empty logs, every request rejected) or leaves the train or valid split empty fails
with :class:`EmptyDatasetError` after writing ``stats.json`` and the dead letter, so the reason can be read there.
A UTF-8 byte order mark at the start of a file is dropped (it is not part of the first record).

Each request's sampling uses ``default_rng([seed, h])`` with ``h`` the keyed hash of its id, so the output is the
same on every run and runner. The item table is a side input (id -> features, and the sorted ids as the pool).
The reads, the split hash and the TFRecord and dead-letter writes are the shared stages (:mod:`pipelines.common`:
:class:`pipelines.common.read.ReadLines`, :class:`pipelines.common.split.HashSplitter`,
:func:`pipelines.common.stages.write_outputs`, whose sink writes parts per bundle and counts the records of every
file); the accounting checks the requests the sink wrote per split against the requests built
(:func:`pipelines.common.rows.check_accounting`).
"""

from __future__ import annotations

import collections
import dataclasses
import json
from typing import Dict

import apache_beam as beam
import numpy as np
from apache_beam.pvalue import AsList, AsSingleton, TaggedOutput

from pipelines.common import files
from pipelines.common.combiners import RowsInFn
from pipelines.common.read import ReadLines
from pipelines.common.lists import COUNTS_FILE, count_list, finalize_lists, write_list_counts
from pipelines.common.rows import output_directory
from pipelines.common.runner import pipeline_options, run_pipeline
from pipelines.common.split import HashSplitter
from pipelines.common.stages import DEADLETTER, STATS, temp_directory, write_outputs
from pipelines.criteo.parse import raw_text, strip_eol
from pipelines.hybrid_samples.encode import EntryCache
from pipelines.hybrid_samples.samples import build_list, to_example_list
from pipelines.hybrid_samples.validate import ITEMS_FILE, Rejection, parse_item, parse_request
from tfrec.config import HybridSamplesConfig
from tfrec.features import HCCP, ListwiseSchema

OWNED_PATTERNS = ("train-*-of-*.tfrecord.gz", "valid-*-of-*.tfrecord.gz", "test-*-of-*.tfrecord.gz",
                  "deadletter/deadletter-*-of-*.jsonl", "schema.json", "stats.json", COUNTS_FILE, ITEMS_FILE)


class EmptyDatasetError(RuntimeError):
    """The run wrote no usable training data: no request, or an empty train or valid split."""


class CountsFn(beam.CombineFn):
    """Sums ``{key: Counter}`` dicts (the per-chunk statistics)."""

    def create_accumulator(self):
        return {}

    def add_input(self, acc, element):
        for k, counter in element.items():
            acc.setdefault(k, collections.Counter()).update(counter)
        return acc

    def merge_accumulators(self, accs):
        out = {}
        for acc in accs:
            self.add_input(out, acc)
        return out

    def extract_output(self, acc):
        return {k: dict(v) for k, v in acc.items()}


class ParseItems(beam.DoFn):
    """(file, [line, ...]) -> ``(item_id, features)``; malformed lines to the dead letter."""

    def __init__(self, schema: ListwiseSchema):
        self.schema = schema

    def process(self, element):
        file_name, lines = element
        for line in lines:
            raw = strip_eol(line)
            parsed = parse_item(raw, self.schema.item_categorical, self.schema.item_dense)
            if isinstance(parsed, Rejection):
                yield TaggedOutput(DEADLETTER, {"source": "items", "file": file_name, "reason": parsed.reason,
                                                "message": parsed.message, "row": raw_text(raw)})
            else:
                yield parsed


class ItemTableFn(beam.CombineFn):
    """``(item_id, features)`` -> ``{"items": id -> features, "duplicates": n}``; of duplicate ids the smallest
    features tuple wins (deterministic whatever the element order)."""

    def create_accumulator(self):
        return [{}, 0]

    def add_input(self, acc, element):
        item, features = element
        old = acc[0].get(item)
        if old is not None:
            acc[1] += 1
            features = min(old, features)
        acc[0][item] = features
        return acc

    def merge_accumulators(self, accs):
        out = self.create_accumulator()
        for table, dup in accs:
            out[1] += dup
            for item, features in table.items():
                self.add_input(out, (item, features))
        return out

    def extract_output(self, acc):
        return {"items": acc[0], "duplicates": acc[1]}


def user_fields(schema: ListwiseSchema):
    """The context features read from a request's ``user`` object: all but ``request_id`` and ``scenario``."""
    return tuple(n for n in schema.context_categorical if n not in ("request_id", "scenario"))


class BuildLists(beam.DoFn):
    """(file, [line, ...]) -> batches ``((split, shard), [serialized ExampleListWithContext, ...])``, dead-letter
    dicts (``deadletter``) and one statistics dict per chunk (``stats``)."""

    def __init__(self, cfg: HybridSamplesConfig, schema: ListwiseSchema, num_shards: int):
        self.cfg = cfg
        self.schema = schema
        self.num_shards = num_shards

    def setup(self):
        self.splitter = HashSplitter(self.cfg.split_ratios, self.cfg.split_salt, self.num_shards)
        self.valid_days, self.test_days = set(self.cfg.valid_days), set(self.cfg.test_days)
        self.user_fields = user_fields(self.schema)
        self._table_id = None

    def _pool(self, table):
        if self._table_id != id(table):  # the side input's sorted ids and encoded entries, once per worker
            self._table_id, self._ids = id(table), sorted(table["items"])
            self._cache = EntryCache(table["items"], self.schema.item_categorical, self.schema.item_dense)
        return self._ids

    def split_of(self, req: dict, h: int) -> str:
        if self.cfg.split_by == "day":
            day = req["day"]
            return "test" if day in self.test_days else ("valid" if day in self.valid_days else "train")
        return self.splitter.split_of(h)

    def process(self, element, table):
        file_name, lines = element
        cfg, schema = self.cfg, self.schema
        items, pool = table["items"], self._pool(table)
        category_slot = schema.item_categorical.index("category")
        out: Dict[tuple, list] = {}
        stats: Dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        for line in lines:
            raw = strip_eol(line)
            req = parse_request(raw, self.user_fields, items)
            if isinstance(req, Rejection):
                stats[DEADLETTER][req.reason] += 1
                yield TaggedOutput(DEADLETTER, {"source": "requests", "file": file_name, "reason": req.reason,
                                                "message": req.message, "row": raw_text(raw)})
                continue
            h = self.splitter.hash(req["request_id"].encode("utf-8"))
            split = self.split_of(req, h)
            full = cfg.full_eval_lists and split != "train"
            rates = [1.0] * len(cfg.chunk_rates) if full else cfg.chunk_rates
            n3 = len(req["retrieved"]) if full else cfg.preranking_samples
            rng = np.random.default_rng([cfg.seed, h])
            cols = build_list(req, pool, items, schema, cfg.chunk_boundaries, rates, n3, cfg.pool_samples, rng,
                              category_slot)
            out.setdefault((split, self.splitter.shard_of(h)), []).append(
                to_example_list(req, cols, items, schema, self._cache))
            count_list(stats[split], cols, schema.tasks)
        yield from out.items()
        yield TaggedOutput(STATS, dict(stats))


def build(p: beam.Pipeline, cfg: HybridSamplesConfig, schema: ListwiseSchema = HCCP) -> Dict[str, object]:
    """Adds the pipeline to ``p``; returns the main PCollections (``lines``, ``lists``, ``deadletter``, ``written``)."""
    out = cfg.output
    shards = cfg.num_shards or 1
    request_files = files.match_inputs(cfg.inputs, "hybrid.inputs")
    item_files = files.match_inputs(cfg.items, "hybrid.items")
    item_lines = p | "ReadItems" >> ReadLines(item_files)
    item_rows = (item_lines
                 | "ParseItems" >> beam.ParDo(ParseItems(schema)).with_outputs(DEADLETTER, main="items"))
    table = item_rows["items"] | "ItemTable" >> beam.CombineGlobally(ItemTableFn())
    lines = p | "ReadRequests" >> ReadLines(request_files)
    built = lines | "BuildLists" >> beam.ParDo(BuildLists(cfg, schema, shards), AsSingleton(table)).with_outputs(
        DEADLETTER, STATS, main="lists")
    lists = built["lists"]
    dead = (built[DEADLETTER], item_rows[DEADLETTER]) | "AllDead" >> beam.Flatten()
    temp_dir = temp_directory(p, out)
    written, dead_written = write_outputs(p, out, shards, lists, dead, temp_dir, label="WriteLists")
    names = schema.item_categorical + schema.item_dense
    rows_in = lines | "RequestsIn" >> beam.CombineGlobally(RowsInFn(lambda _, chunk: len(chunk)))
    items_in = item_lines | "ItemsIn" >> beam.CombineGlobally(RowsInFn(lambda _, chunk: len(chunk)))
    stats = built[STATS] | "Stats" >> beam.CombineGlobally(CountsFn())
    item_dead = item_rows[DEADLETTER] | "ItemsRejected" >> beam.combiners.Count.Globally()
    _ = (p | "Once" >> beam.Create([None])
         | "WriteCounts" >> beam.Map(
             _write_counts, out, temp_dir, AsSingleton(rows_in), AsSingleton(items_in), AsSingleton(item_dead),
             AsSingleton(stats), AsSingleton(table), AsList(written), AsList(dead_written), names))
    return {"lines": lines, "lists": lists, "deadletter": dead, "written": written, "dead_written": dead_written}


def _write_counts(_, out, temp_dir, rows_in, items_in, items_rejected, stats, table, written, dead_written, names):
    files.write_bytes(files.join(out, ITEMS_FILE), "".join(
        json.dumps(dict(zip(names, table["items"][item])), separators=(",", ":")) + "\n"
        for item in sorted(table["items"])).encode("utf-8"))
    write_list_counts(out, temp_dir, rows_in, stats, written, dead_written, items_in=items_in,
                      items_rejected=items_rejected, items_in_table=len(table["items"]),
                      items_duplicate=table["duplicates"])


def finalize(cfg: HybridSamplesConfig, schema: ListwiseSchema = HCCP) -> Dict[str, object]:
    """Checks the request accounting (:func:`pipelines.common.lists.finalize_lists`: requests in = written per
    split + rejected, the sink's records against the requests built); writes stats.json and schema.json.

    Raises:
      pipelines.common.rows.RowAccountingError: (a ``RuntimeError``) the accounting does not add up.
    """
    return finalize_lists(cfg.output, "prepare-hybrid", schema, other_dead="items_rejected",
                          extra_keys=("items_in", "items_rejected", "items_in_table", "items_duplicate"),
                          extra={"config": dataclasses.asdict(cfg)})


def run(cfg: HybridSamplesConfig) -> Dict[str, object]:
    """Validates ``cfg``, runs the pipeline on ``cfg.runner``, checks the accounting, returns the stats.

    Raises:
      tfrec.config.ConfigError: an invalid config.
      ValueError: no inputs, no item table, or no output.
      FileNotFoundError: an input pattern that matches nothing.
      EmptyDatasetError: no request written (empty logs, all rejected), or an empty train or valid split.
      RuntimeError: the run failed or the request accounting does not add up.
    """
    cfg.validate()
    if not cfg.inputs or not cfg.items:
        raise ValueError("prepare-hybrid: give the request logs (hybrid.inputs) and the item table (hybrid.items)")
    if not cfg.output:
        raise ValueError("prepare-hybrid: hybrid.output is empty; set it to the output directory")
    options = pipeline_options(cfg.runner, cfg.beam_args, "prepare-hybrid")
    cfg = dataclasses.replace(cfg, output=output_directory(cfg.output, OWNED_PATTERNS))
    run_pipeline(lambda p: build(p, cfg), options, "prepare-hybrid", cfg.runner)
    stats = finalize(cfg)
    check_usable(stats, cfg)
    return stats


def check_usable(stats: Dict[str, object], cfg: HybridSamplesConfig) -> None:
    """Raises :class:`EmptyDatasetError` (one line that says why) when ``stats`` hold no training data."""
    written = stats["requests_written"]
    where = f"see {files.join(cfg.output, 'stats.json')}"
    if not stats["requests_in"]:
        raise EmptyDatasetError(f"prepare-hybrid: no requests in {', '.join(cfg.inputs)} (empty request logs)")
    if not sum(written.values()):
        reasons = ", ".join(f"{k} {v:,}" for k, v in stats["rejected_by_reason"].items())
        raise EmptyDatasetError(f"prepare-hybrid: all {stats['requests_in']:,} requests were rejected ({reasons}); "
                                f"see {files.join(cfg.output, 'deadletter')}")
    for split in ("train", "valid"):
        if not written[split]:
            raise EmptyDatasetError(f"prepare-hybrid: the {split} split is empty (requests written: "
                                    + ", ".join(f"{s} {n:,}" for s, n in written.items()) + f"); {where}")
