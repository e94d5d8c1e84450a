"""Pipeline B of the Taobao data (:mod:`pipelines.taobao.pipeline` has A and why there are two): requests +
the DIN scorer -> HCCP lists.

B, :func:`run_lists` (``cfg``, the DIN scorer directory): ``cfg.lists_output`` gets the lists of
:mod:`pipelines.taobao.lists` (``tfrec.data_taobao.TAOBAO_LISTS``) as ``{split}-SSSSS-of-NNNNN.tfrecord.gz``, a
dead letter, ``schema.json`` and ``stats.json`` (requests in / written / rejected, checked; items per sample type,
which names the absent N2 and N3; the ranker).
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
from typing import Dict, Optional

import apache_beam as beam
from apache_beam.pvalue import AsList, AsSingleton, TaggedOutput

from pipelines.common import lists as list_counts
from pipelines.common.lists import COUNTS_FILE, count_list, write_list_counts
from pipelines.common.stages import DEADLETTER, STATS, temp_directory, write_outputs
from pipelines.criteo import files
from pipelines.criteo.parse import raw_text
from pipelines.criteo.read import ReadLines
from pipelines.criteo.stages import SPLITS, run_pipeline
from pipelines.hybrid_samples.pipeline import CountsFn, ItemTableFn, ParseItems
from pipelines.taobao.pipeline import ITEMS_FILE, REQUESTS_DIR, beam_options, prepare_output
from pipelines.taobao.requests import Splitter
from tfrec.config_taobao import TaobaoConfig

OWNED_LISTS = tuple(f"{s}-*-of-*.tfrecord.gz" for s in SPLITS) + (
    "deadletter/deadletter-*-of-*.jsonl", "schema.json", "stats.json", COUNTS_FILE)
#: The stats' note on the sample types the public log cannot give.
ABSENT_TYPES = {"N2": "unexposed ranking candidates: the Taobao log has impressions only",
                "N3": "pre-ranking candidates: the Taobao log has impressions only"}


class ScoreLists(beam.DoFn):
    """Batches of request JSON -> list batches ``((split, shard), [bytes])``, dead letters, statistics."""

    def __init__(self, cfg: TaobaoConfig, scorer_dir: str, max_history: int):
        self.cfg, self.scorer_dir, self.max_history = cfg, scorer_dir, max_history

    def setup(self):
        from tfrec.data_taobao import TAOBAO_LISTS
        from tfrec.train_din import load_scorer

        c = self.cfg
        self.schema = TAOBAO_LISTS
        self.splitter = Splitter(c.first_day_unix(), c.train_days, c.test_days, c.valid_share, c.split_salt)
        self.score = load_scorer(self.scorer_dir)
        self._table_id = None

    def _pool(self, table):
        from pipelines.hybrid_samples.encode import EntryCache

        if self._table_id != id(table):
            self._table_id, self._ids = id(table), sorted(table["items"])
            self._cache = EntryCache(table["items"], self.schema.item_categorical, self.schema.item_dense)
        return self._ids

    def process(self, batch, table):
        import numpy as np

        from pipelines.taobao.lists import build_request_list, din_inputs, to_example_list

        items, pool = table["items"], self._pool(table)
        stats: Dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        reqs = []
        for record in batch:
            try:
                req = json.loads(record)
                missing = [x for x, _ in req["items"] if x not in items]
            except (ValueError, KeyError, TypeError) as e:
                stats[DEADLETTER]["bad_request"] += 1
                yield TaggedOutput(DEADLETTER, {"source": "requests", "file": "", "reason": "bad_request",
                                                "message": f"{type(e).__name__}: {e}"[:200],
                                                "row": raw_text(record[:2000])})
                continue
            if missing:
                stats[DEADLETTER]["unknown_ad"] += 1
                yield TaggedOutput(DEADLETTER, {"source": "requests", "file": "", "reason": "unknown_ad",
                                                "message": f"ad {missing[0]} is not in the item table",
                                                "row": raw_text(record[:2000])})
                continue
            reqs.append(req)
        if reqs:
            import tensorflow as tf

            inputs = din_inputs(reqs, items, self.max_history)
            scores = self.score(**{k: tf.constant(v) for k, v in inputs.items()})["probability"].numpy()
        out: Dict[tuple, list] = {}
        start = 0
        for req in reqs:
            n = len(req["items"])
            h = self.splitter.hash(req["request_id"])
            rng = np.random.default_rng([self.cfg.seed, h])
            cols = build_request_list(req, scores[start:start + n].tolist(), pool, items, self.schema,
                                      self.cfg.pool_samples, rng)
            start += n
            out.setdefault((req["split"], h % self.cfg.num_shards), []).append(
                to_example_list(req, cols, self.schema, self._cache))
            count_list(stats[req["split"]], cols, self.schema.tasks)
        yield from out.items()
        yield TaggedOutput(STATS, {k: dict(v) for k, v in stats.items()})


def build_lists(p: beam.Pipeline, cfg: TaobaoConfig, scorer_dir: str, max_history: int) -> Dict[str, object]:
    """Adds pipeline B to ``p`` (module docstring)."""
    from tfrec.data_taobao import TAOBAO_LISTS

    out, shards = cfg.lists_output, cfg.num_shards
    item_rows = (p | "ReadItems" >> ReadLines([files.join(cfg.output, ITEMS_FILE)])
                 | "ParseItems" >> beam.ParDo(ParseItems(TAOBAO_LISTS)).with_outputs(DEADLETTER, main="items"))
    table = item_rows["items"] | "ItemTable" >> beam.CombineGlobally(ItemTableFn())
    records = p | "ReadRequests" >> beam.io.ReadFromTFRecord(
        files.join(cfg.output, REQUESTS_DIR, "*-of-*.tfrecord.gz"))
    built = (records | "Batch" >> beam.BatchElements(min_batch_size=64, max_batch_size=1024)
             | "Score" >> beam.ParDo(ScoreLists(cfg, scorer_dir, max_history), AsSingleton(table)).with_outputs(
                 DEADLETTER, STATS, main="lists"))
    lists = built["lists"]  # straight to the sink, as in A (pipelines.taobao.pipeline.build_requests)
    dead = (built[DEADLETTER], item_rows[DEADLETTER]) | "AllDead" >> beam.Flatten()
    temp_dir = temp_directory(p, out)
    written, dead_written = write_outputs(p, out, shards, lists, dead, temp_dir, label="WriteLists")
    requests_in = records | "RequestsIn" >> beam.combiners.Count.Globally()
    items_dead = item_rows[DEADLETTER] | "ItemsRejected" >> beam.combiners.Count.Globally()
    stats = built[STATS] | "Stats" >> beam.CombineGlobally(CountsFn())
    _ = (p | "Once" >> beam.Create([None])
         | "WriteCounts" >> beam.Map(_write_list_counts, out, temp_dir, AsSingleton(requests_in), AsSingleton(stats),
                                     AsSingleton(table), AsSingleton(items_dead), AsList(written),
                                     AsList(dead_written)))
    return {"lists": lists, "deadletter": dead, "written": written, "dead_written": dead_written}


def _write_list_counts(_, out, temp_dir, requests_in, stats, table, items_rejected, written, dead_written):
    # the dead letter's results are a side input, so this runs after its commit (as in A's _write_counts)
    write_list_counts(out, temp_dir, requests_in, stats, written, dead_written,
                      items_in_table=len(table["items"]), items_rejected=items_rejected)


def finalize_lists(cfg: TaobaoConfig, ranker: Optional[dict] = None) -> Dict[str, object]:
    """Checks the request accounting (:func:`pipelines.common.lists.finalize_lists`: requests in = written per
    split + rejected, the sink's records against the requests built); writes stats.json and schema.json.

    Raises:
      pipelines.common.rows.RowAccountingError: (a ``RuntimeError``) the accounting does not add up.
    """
    from tfrec.data_taobao import TAOBAO_LISTS

    return list_counts.finalize_lists(
        cfg.lists_output, "taobao-lists", TAOBAO_LISTS, other_dead="items_rejected",
        extra_keys=("items_in_table",),
        extra={"absent_sample_types": ABSENT_TYPES, "ranker": ranker or {}, "config": dataclasses.asdict(cfg)})


def run_lists(cfg: TaobaoConfig, scorer_dir: str, max_history: int = 50, ranker: Optional[dict] = None,
              progress=None) -> Dict[str, object]:
    """Runs pipeline B on ``cfg.output`` (pipeline A's) with the DIN scorer SavedModel at ``scorer_dir``.

    Raises:
      ValueError: no lists output. FileNotFoundError: A's outputs or the scorer are missing.
      RuntimeError: the run failed or the accounting does not add up.
    """
    cfg.validate()
    if not files.match(files.join(cfg.output, ITEMS_FILE)):
        raise FileNotFoundError(f"taobao-lists: {cfg.output} has no {ITEMS_FILE}; run the requests pipeline first")
    if not os.path.isdir(scorer_dir) and "://" not in scorer_dir:
        raise FileNotFoundError(f"taobao-lists: no DIN scorer SavedModel at {scorer_dir}")
    cfg = prepare_output(cfg, "lists_output", OWNED_LISTS)
    if "://" not in cfg.output:
        cfg = dataclasses.replace(cfg, output=os.path.abspath(cfg.output))
    run_pipeline(lambda p: build_lists(p, cfg, scorer_dir, max_history), beam_options(cfg), "taobao-lists",
                 cfg.runner, progress=progress)
    return finalize_lists(cfg, ranker)
