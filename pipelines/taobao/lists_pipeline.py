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
from apache_beam.io.filesystems import FileSystems
from apache_beam.pvalue import AsList, AsSingleton, TaggedOutput

from pipelines.criteo import files
from pipelines.criteo.parse import raw_text
from pipelines.criteo.read import ReadLines
from pipelines.criteo.stages import DEADLETTER, SPLITS, STATS, run_pipeline, write_outputs
from pipelines.hybrid_samples.pipeline import CountsFn, ItemTableFn, ParseItems
from pipelines.taobao.pipeline import COUNTS_FILE, ITEMS_FILE, REQUESTS_DIR, beam_options, prepare_output, remove_paths
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
            s = stats[req["split"]]
            s["requests"] += 1
            s["items"] += len(cols["item"])
            s["clicks"] += int(sum(cols["click"]))
            for t in cols["sample_type"]:
                s[f"type_{t}"] += 1
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
    written, dead_files, temp_dir = write_outputs(p, out, shards, lists, dead, label="WriteLists")
    requests_in = records | "RequestsIn" >> beam.combiners.Count.Globally()
    stats = built[STATS] | "Stats" >> beam.CombineGlobally(CountsFn())
    _ = (p | "Once" >> beam.Create([None])
         | "WriteCounts" >> beam.Map(_write_list_counts, out, temp_dir, AsSingleton(requests_in), AsSingleton(stats),
                                     AsSingleton(table), AsList(written), AsList(dead_files)))
    return {"lists": lists, "deadletter": dead}


def _write_list_counts(_, out, temp_dir, requests_in, stats, table, written, dead_files):
    del dead_files  # a side input only to run after the dead letter's commit (as in A's _write_counts)
    remove_paths([temp_dir])
    files.write_json(files.join(out, COUNTS_FILE), {
        "requests_in": requests_in, "stats": stats, "items_in_table": len(table["items"]),
        "files": {s: sorted(files.relative(r.file_name, out) for r in written if r.destination[0] == s)
                  for s in SPLITS}})


def finalize_lists(cfg: TaobaoConfig, ranker: Optional[dict] = None) -> Dict[str, object]:
    """Checks ``requests_in == sum(requests_written) + requests_rejected``; writes stats.json and schema.json.

    Raises:
      RuntimeError: the accounting does not add up.
    """
    from tfrec.data_taobao import TAOBAO_LISTS
    from tfrec.features import SAMPLE_TYPES

    out = cfg.lists_output
    counts_path = files.join(out, COUNTS_FILE)
    counts = files.read_json(counts_path)
    st = counts["stats"]
    reasons = dict(sorted(st.get(DEADLETTER, {}).items()))
    written = {s: int(st.get(s, {}).get("requests", 0)) for s in SPLITS}
    if counts["requests_in"] != sum(written.values()) + sum(reasons.values()):
        raise RuntimeError(f"taobao-lists: request accounting failed: requests_in={counts['requests_in']} != "
                           f"written {written} + rejected {reasons}; see {counts_path}")
    per_type = {s: {t: int(st.get(s, {}).get(f"type_{v}", 0)) for t, v in SAMPLE_TYPES.items()} for s in SPLITS}
    stats = {
        "requests_in": counts["requests_in"], "requests_written": written,
        "requests_rejected": sum(reasons.values()), "rejected_by_reason": reasons,
        "items_per_sample_type": per_type, "absent_sample_types": ABSENT_TYPES,
        "label_rate_on_impressions": {s: {"click": (st.get(s, {}).get("clicks", 0) / per_type[s]["N1"]
                                                    if per_type[s]["N1"] else None)} for s in SPLITS},
        "mean_list_size": {s: (st.get(s, {}).get("items", 0) / written[s] if written[s] else None) for s in SPLITS},
        "items_in_table": counts["items_in_table"], "ranker": ranker or {},
        "config": dataclasses.asdict(cfg), "files": counts["files"],
    }
    files.write_json(files.join(out, "schema.json"), TAOBAO_LISTS.to_json())
    files.write_json(files.join(out, "stats.json"), stats)
    FileSystems.delete([counts_path])
    return stats


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
