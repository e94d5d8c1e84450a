"""The Taobao Beam pipelines: raw files -> requests and DIN examples (A, this module); requests + DIN -> HCCP
lists (B, :mod:`pipelines.taobao.lists_pipeline`).

Why two pipelines: the lists carry the ranking order of each request's impressions, which comes from DIN's
scores, and DIN must first be trained on the requests' examples. So the protocol runs A, trains DIN
(``tfrec.train_din``: it exports a scorer SavedModel), then B, which loads that SavedModel once per worker and
scores the requests in batches.

A, :func:`run_requests` (``cfg: tfrec.config_taobao.TaobaoConfig``): reads either layout
(:mod:`pipelines.taobao.parse`), joins the ad table (a side input) and, per user (one ``CoGroupByKey`` of the
impressions, the profile and the behaviours by user id), builds the requests with their history
(:mod:`pipelines.taobao.requests`). Layout of ``cfg.output``:

* ``{train,valid,test}-SSSSS-of-NNNNN.tfrecord.gz``: one ``tf.train.Example`` per written impression (DIN's
  training data, ``tfrec.data_taobao.din_feature_spec``);
* ``requests/{train,valid,test}-SSSSS-of-NNNNN.tfrecord.gz``: one record per request, its JSON (what B reads);
* ``items.jsonl``: the ad table (``item_id``, ``category``, ``brand``, ``campaign_id``, ``customer``, ``price``;
  every ad of ``ad_feature``, or of the joined rows), the pool of B's N5 negatives;
* ``deadletter/deadletter-00000-of-00001.jsonl``: one JSON object per rejected row: ``source`` (the file kind),
  ``file``, ``reason`` (:data:`pipelines.taobao.parse.REASONS` or ``unknown_ad``), ``message``, ``row``;
* ``stats.json`` (rows in and rejected per file kind; requests, impressions, clicks per split; history lengths;
  ``impressions_in == sum(impressions_written) + impressions_rejected`` is checked) and ``schema.json``.

B is :func:`pipelines.taobao.lists_pipeline.run_lists`. A request's shard and pool sample come from a keyed hash
of its id (``default_rng([seed, hash])``), so both outputs are the same on every run and runner. The writes reuse
the Criteo pipeline's stages (:func:`pipelines.criteo.stages.write_outputs`,
:func:`~pipelines.criteo.stages.run_pipeline`) and the item table of the hybrid-sample pipeline.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import json
import os
from typing import Dict, List

import apache_beam as beam
from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.filesystems import FileSystems
from apache_beam.pvalue import AsList, AsSingleton, TaggedOutput
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue

from pipelines.criteo import files
from pipelines.criteo.combiners import RowsInFn
from pipelines.criteo.parse import Rejection, raw_text, strip_eol
from pipelines.criteo.pipeline import pipeline_options
from pipelines.criteo.read import ReadLines
from pipelines.criteo.stages import DEADLETTER, SPLITS, STATS, run_pipeline, write_outputs
from pipelines.common.rows import RowAccountingError
from pipelines.common.sink import ShardNaming, WriteShards, temp_dir_under
from pipelines.hybrid_samples.pipeline import CountsFn, ItemTableFn
from pipelines.taobao import parse as taobao_parse
from pipelines.taobao.requests import ExampleEncoder, Splitter, item_values, user_requests
from tfrec.config import PrepareConfig
from tfrec.config_taobao import TaobaoConfig

COUNTS_FILE = "_counts.json"
REQUESTS_DIR = "requests"
ITEMS_FILE = "items.jsonl"
OWNED_REQUESTS = tuple(f"{s}-*-of-*.tfrecord.gz" for s in SPLITS) + tuple(
    f"{REQUESTS_DIR}/{s}-*-of-*.tfrecord.gz" for s in SPLITS) + (
    "deadletter/deadletter-*-of-*.jsonl", ITEMS_FILE, "schema.json", "stats.json", COUNTS_FILE)
FLUSH = 4096


def beam_options(cfg: TaobaoConfig):
    return pipeline_options(PrepareConfig(runner=cfg.runner, beam_args=list(cfg.beam_args)))


def _window(value):
    return WindowedValue(value, GlobalWindow().max_timestamp(), [GlobalWindow()])


def layout_of(cfg: TaobaoConfig) -> str:
    """``alibaba`` or ``joined`` from the configured inputs.

    Raises:
      ValueError: both layouts, or neither, or Alibaba impressions without the ad table.
    """
    alibaba = bool(cfg.raw_sample)
    if alibaba == bool(cfg.joined):
        raise ValueError("taobao: give the Alibaba files (taobao.raw_sample, taobao.ad_feature, ...) or the "
                         "pre-joined file (taobao.joined), not both or neither")
    if alibaba and not cfg.ad_feature:
        raise ValueError("taobao: taobao.ad_feature is required with taobao.raw_sample (the ads' categories)")
    return "alibaba" if alibaba else "joined"


def history_source(cfg: TaobaoConfig, layout: str) -> str:
    """The history source (``taobao.history``, ``auto`` resolved).

    Raises:
      ValueError: ``behavior`` without a behaviour log, or ``sequence`` outside the joined layout.
    """
    source = cfg.history
    if source == "auto":
        source = "sequence" if layout == "joined" else ("behavior" if cfg.behavior_log else "clicks")
    if source == "behavior" and (layout == "joined" or not cfg.behavior_log):
        raise ValueError("taobao.history=behavior needs taobao.behavior_log (Alibaba layout)")
    if source == "sequence" and layout != "joined":
        raise ValueError("taobao.history=sequence needs the joined layout (taobao.joined)")
    return source


def _matched(cfg: TaobaoConfig, layout: str) -> Dict[str, List[str]]:
    kinds = ("joined",) if layout == "joined" else ("raw_sample", "ad_feature", "user_profile", "behavior_log")
    out = {}
    for kind in kinds:
        patterns = getattr(cfg, kind)
        if patterns:
            out[kind] = files.match_inputs(patterns, f"taobao.{kind}")
            for path in out[kind]:
                with FileSystems.open(path) as f:
                    taobao_parse.check_header(f.readline(), kind, path)
    return out


class ParseFile(beam.DoFn):
    """(file, [line, ...]) of one file kind -> parsed records; rejected lines as dead-letter dicts."""

    def __init__(self, kind: str, utc_offset_hours: int):
        self.kind, self.utc_offset_hours = kind, utc_offset_hours

    def setup(self):
        parse = taobao_parse.PARSERS[self.kind]
        self.parse = (functools.partial(parse, utc_offset_hours=self.utc_offset_hours)
                      if self.kind == "joined" else parse)

    def process(self, element):
        file_name, lines = element
        for line in lines:
            if taobao_parse.is_header(line, self.kind):
                continue
            raw = strip_eol(line)
            r = self.parse(raw)
            if type(r) is Rejection:
                yield TaggedOutput(DEADLETTER, {"source": self.kind, "file": file_name, "reason": r.reason,
                                                "message": r.message, "row": raw_text(raw)})
            else:
                yield r


def _count_rows(kind):
    return RowsInFn(lambda _, chunk: sum(1 for line in chunk if not taobao_parse.is_header(line, kind)))


class BuildRequests(beam.DoFn):
    """(user, {impressions, profiles, behaviors}) -> DIN example batches ``((split, shard), [bytes])``, request
    batches on ``requests``, dead letters and one statistics dict per bundle (``stats``)."""

    def __init__(self, cfg: TaobaoConfig, source: str):
        self.cfg, self.source = cfg, source

    def setup(self):
        c = self.cfg
        self.splitter = Splitter(c.first_day_unix(), c.train_days, c.test_days, c.valid_share, c.split_salt)
        self.encoder = ExampleEncoder()

    def start_bundle(self):
        self.examples: Dict[tuple, list] = {}
        self.requests: Dict[tuple, list] = {}
        self.stats: Dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.pending = 0

    def _flush(self, wrap):
        for key, batch in self.examples.items():
            yield wrap(key, batch, None)
        for key, batch in self.requests.items():
            yield wrap(key, batch, REQUESTS_DIR)
        self.examples, self.requests, self.pending = {}, {}, 0

    def process(self, element, table):
        user, groups = element
        impressions = list(groups["impressions"])
        if not impressions:
            return
        c, ads = self.cfg, table["items"]
        profiles = list(groups.get("profiles", []))
        requests, rejected = user_requests(user, impressions, min(profiles) if profiles else None,
                                           list(groups.get("behaviors", [])), ads, self.splitter, self.source,
                                           c.history_btags, c.max_history, c.request_window_s)
        for imp, rej in rejected:
            self.stats[DEADLETTER][rej.reason] += 1
            yield TaggedOutput(DEADLETTER, {"source": "requests", "file": "", "reason": rej.reason,
                                            "message": rej.message,
                                            "row": f"{imp.user},{imp.time_stamp},{imp.adgroup_id},{imp.pid},"
                                                   f"{1 - imp.clk},{imp.clk}"})
        for req in requests:
            key = (req["split"], self.splitter.hash(req["request_id"]) % c.num_shards)
            self.examples.setdefault(key, []).extend(self.encoder.examples(req, ads))
            self.requests.setdefault(key, []).append(json.dumps(req, sort_keys=True).encode("utf-8"))
            s = self.stats[req["split"]]
            s["requests"] += 1
            s["impressions"] += len(req["items"])
            s["clicks"] += sum(clk for _, clk in req["items"])
            s["history_entries"] += len(req["click_history"])
            s["requests_without_history"] += int(not req["click_history"])
            self.pending += len(req["items"])
        if self.pending >= FLUSH:
            yield from self._flush(lambda k, b, tag: (k, b) if tag is None else TaggedOutput(tag, (k, b)))

    def finish_bundle(self):
        yield from self._flush(lambda k, b, tag: _window((k, b)) if tag is None else TaggedOutput(tag, _window((k, b))))
        yield TaggedOutput(STATS, _window({k: dict(v) for k, v in self.stats.items()}))


def _write_records(batches, out: str, shards: int, label: str):
    """Batches ``((split, shard), [bytes])`` -> ``out/<split>-SSSSS-of-NNNNN.tfrecord.gz`` (as ``write_outputs``:
    :class:`pipelines.common.sink.WriteShards`, no grouping of records, every shard file written even when empty).
    Returns the shard results and the parts' temporary directory (removed by the last step)."""
    temp = temp_dir_under(out)
    written = batches | label >> WriteShards(out, ShardNaming(shards), [(s, k) for s in SPLITS for k in range(shards)],
                                             temp)
    return written, temp


def build_requests(p: beam.Pipeline, cfg: TaobaoConfig) -> Dict[str, object]:
    """Adds pipeline A to ``p`` (module docstring); returns its main PCollections."""
    layout = layout_of(cfg)
    source = history_source(cfg, layout)
    inputs = _matched(cfg, layout)
    out, shards = cfg.output, cfg.num_shards
    lines = {k: p | f"Read[{k}]" >> ReadLines(v) for k, v in inputs.items()}
    parsed = {k: v | f"Parse[{k}]" >> beam.ParDo(ParseFile(k, cfg.utc_offset_hours)).with_outputs(
        DEADLETTER, main="rows") for k, v in lines.items()}
    groups = {}
    if layout == "joined":
        rows = parsed["joined"]["rows"]
        ads = rows | "Ads" >> beam.Map(lambda r: (r.ad.adgroup_id, r.ad))
        groups["impressions"] = rows | "ByUser" >> beam.Map(lambda r: (r.impression.user,
                                                                       (r.impression, r.click_sequence)))
        groups["profiles"] = rows | "Profiles" >> beam.Map(lambda r: (r.profile.userid, r.profile))
    else:
        ads = parsed["ad_feature"]["rows"] | "Ads" >> beam.Map(lambda a: (a.adgroup_id, a))
        groups["impressions"] = parsed["raw_sample"]["rows"] | "ByUser" >> beam.Map(lambda i: (i.user, (i, ())))
        if "user_profile" in parsed:
            groups["profiles"] = parsed["user_profile"]["rows"] | "Profiles" >> beam.Map(lambda r: (r.userid, r))
        if "behavior_log" in parsed and source == "behavior":
            keep = set(cfg.history_btags)
            groups["behaviors"] = (parsed["behavior_log"]["rows"]
                                   | "Behaviors" >> beam.FlatMap(lambda b: [(b.user, b)] if b.btag in keep else []))
    table = ads | "AdTable" >> beam.CombineGlobally(ItemTableFn())
    built = (groups | "ByUserJoin" >> beam.CoGroupByKey()
             | "Requests" >> beam.ParDo(BuildRequests(cfg, source), AsSingleton(table)).with_outputs(
                 DEADLETTER, STATS, REQUESTS_DIR, main="examples"))
    # The batches go to the sinks straight from the ParDo: no Flatten with an empty batch per shard (the sink
    # writes every shard file, empty ones too), since the local runner materialises a Flatten of two stages'
    # outputs in memory, i.e. every DIN example and request of the run.
    examples, requests = built["examples"], built[REQUESTS_DIR]
    dead = [v[DEADLETTER] for v in parsed.values()] + [built[DEADLETTER]]
    dead = dead | "AllDead" >> beam.Flatten()
    written, dead_files, temp_dir = write_outputs(p, out, shards, examples, dead, label="WriteExamples")
    req_written, req_temp = _write_records(requests, files.join(out, REQUESTS_DIR), shards, "WriteRequests")
    rows_in = ([v | f"RowsIn[{k}]" >> beam.CombineGlobally(_count_rows(k))
                | f"RowsInKey[{k}]" >> beam.Map(lambda n, k=k: (k, n)) for k, v in lines.items()]
               | "AllRowsIn" >> beam.Flatten())
    rejected = (dead | "DeadKeys" >> beam.Map(lambda d: (d["source"], d["reason"]))
                | "Rejected" >> beam.combiners.Count.PerElement())
    stats = built[STATS] | "Stats" >> beam.CombineGlobally(CountsFn())
    _ = (p | "Once" >> beam.Create([None])
         | "WriteCounts" >> beam.Map(_write_counts, cfg, [temp_dir, req_temp], AsList(rows_in), AsList(rejected), AsSingleton(stats), AsSingleton(table), AsList(written),
                                     AsList(req_written), AsList(dead_files), layout, source))
    return {"examples": examples, "requests": requests, "deadletter": dead, "table": table}


def remove_paths(paths):
    for path in paths:
        try:
            FileSystems.delete([path])
        except BeamIOError:
            pass


def _write_counts(_, cfg, temps, rows_in, rejected, stats, table, written, req_written, dead_files, layout, source):
    # ``dead_files`` (like ``written``) is a side input so that this step, which removes the parts' temporary
    # directories, runs after every sink has committed its parts.
    del dead_files
    remove_paths(temps)
    with FileSystems.create(files.join(cfg.output, ITEMS_FILE)) as f:
        for ad_id in sorted(table["items"]):
            v = item_values(table["items"][ad_id])
            f.write((json.dumps({"item_id": v[0], "category": v[1], "brand": v[2], "campaign_id": v[3],
                                 "customer": v[4], "price": v[5]}) + "\n").encode("utf-8"))
    files.write_json(files.join(cfg.output, COUNTS_FILE), {
        "rows_in": dict(sorted(rows_in)), "rejected": [[s, r, n] for (s, r), n in rejected], "stats": stats,
        "ads_in_table": len(table["items"]), "ads_duplicate": table["duplicates"], "layout": layout,
        "history": source,
        "files": {s: sorted(files.relative(r.file_name, cfg.output) for r in written if r.destination[0] == s)
                  for s in SPLITS},
        # what the sinks wrote (records per split), which the accounting checks, not the parser's counts
        "records_written": {s: sum(r.records for r in written if r.destination[0] == s) for s in SPLITS},
        "requests_records_written": {s: sum(r.records for r in req_written if r.destination[0] == s) for s in SPLITS},
        "request_files": {s: sorted(REQUESTS_DIR + "/" + files.relative(r.file_name, files.join(cfg.output, REQUESTS_DIR)) for r in req_written
                                    if r.destination[0] == s) for s in SPLITS}})


def finalize_requests(cfg: TaobaoConfig) -> Dict[str, object]:
    """Checks the impression accounting and writes ``stats.json`` and ``schema.json`` of A.

    Raises:
      RuntimeError: ``impressions_in != sum(impressions_written) + impressions_rejected``.
    """
    from tfrec.data_taobao import CONTEXT_FEATURES, HISTORY_FEATURES, ITEM_FEATURES

    counts_path = files.join(cfg.output, COUNTS_FILE)
    counts = files.read_json(counts_path)
    st = counts["stats"]
    kind = "joined" if counts["layout"] == "joined" else "raw_sample"
    by_source: Dict[str, Dict[str, int]] = {}
    for source, reason, n in counts["rejected"]:
        by_source.setdefault(source, {})[reason] = n
    imp_rejected = sum(by_source.get(kind, {}).values()) + sum(by_source.get("requests", {}).values())
    written = {s: int(st.get(s, {}).get("impressions", 0)) for s in SPLITS}
    impressions_in = counts["rows_in"][kind]
    if impressions_in != sum(written.values()) + imp_rejected:
        raise RuntimeError(f"taobao: impression accounting failed: impressions_in={impressions_in} != written "
                           f"{written} + rejected {imp_rejected}; see {counts_path}")
    per_split = {s: {k: int(v) for k, v in st.get(s, {}).items()} for s in SPLITS}
    # The sinks' own counts: one DIN example per impression written, one request record per request.
    requests = {s: per_split[s].get("requests", 0) for s in SPLITS}
    for what, expected, sunk in (("DIN examples", written, counts["records_written"]),
                                 ("request records", requests, counts["requests_records_written"])):
        if {s: int(sunk.get(s, 0)) for s in SPLITS} != expected:
            raise RowAccountingError(f"taobao: the sinks wrote {sunk} {what}, the requests built hold {expected}; "
                                     f"records were lost between the parser and the files (see {counts_path})")
    stats = {
        "layout": counts["layout"], "history": counts["history"], "impressions_in": impressions_in,
        "impressions_written": written, "impressions_rejected": imp_rejected,
        "requests_written": {s: per_split[s].get("requests", 0) for s in SPLITS},
        "clicks": {s: per_split[s].get("clicks", 0) for s in SPLITS},
        "mean_impressions_per_request": {s: (per_split[s]["impressions"] / per_split[s]["requests"]
                                             if per_split[s].get("requests") else None) for s in SPLITS},
        "mean_history_length": {s: (per_split[s].get("history_entries", 0) / per_split[s]["requests"]
                                    if per_split[s].get("requests") else None) for s in SPLITS},
        "per_split": per_split, "rows_in": counts["rows_in"],
        "rejected_by_source": {k: dict(sorted(v.items())) for k, v in sorted(by_source.items())},
        "ads_in_table": counts["ads_in_table"], "ads_duplicate": counts["ads_duplicate"],
        "config": dataclasses.asdict(cfg), "files": counts["files"], "request_files": counts["request_files"],
    }
    schema = {"name": "taobao_din", "kind": "taobao_din",
              "format": "tf.train.Example, one per impression (tfrec.data_taobao.din_feature_spec)",
              "context": ["request_id", *CONTEXT_FEATURES], "item": [*ITEM_FEATURES, "price"],
              "history": list(HISTORY_FEATURES), "ints": ["day", "time_stamp"], "label": "label"}
    files.write_json(files.join(cfg.output, "schema.json"), schema)
    files.write_json(files.join(cfg.output, "stats.json"), stats)
    FileSystems.delete([counts_path])
    return stats


def prepare_output(cfg: TaobaoConfig, attr: str, owned) -> TaobaoConfig:
    out = getattr(cfg, attr)
    if not out:
        raise ValueError(f"taobao: taobao.{attr} is empty; set it to the output directory")
    if "://" not in out:
        cfg = dataclasses.replace(cfg, **{attr: os.path.abspath(out)})
    files.delete_owned(getattr(cfg, attr), owned)
    return cfg


def run_requests(cfg: TaobaoConfig, progress=None) -> Dict[str, object]:
    """Validates ``cfg``, runs pipeline A, checks the accounting, returns its stats.

    Raises:
      tfrec.config.ConfigError: an invalid config. ValueError: inputs or output missing or inconsistent.
      FileNotFoundError: an input pattern that matches nothing. InputError: a header that is not the layout's.
      RuntimeError: the run failed or the accounting does not add up.
    """
    cfg.validate()
    layout_of(cfg)
    cfg = prepare_output(cfg, "output", OWNED_REQUESTS)
    run_pipeline(lambda p: build_requests(p, cfg), beam_options(cfg), "taobao-requests", cfg.runner, progress=progress)
    return finalize_requests(cfg)
