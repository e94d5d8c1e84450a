"""End-to-end tests of the HCCP hybrid-sample Beam pipeline (``pipelines.hybrid_samples``) on the DirectRunner."""

from __future__ import annotations

import glob
import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf

from pipelines.hybrid_samples import REASONS, run
from tfrec.config import CascadeConfig, HybridSamplesConfig
from tfrec.features import HCCP, SAMPLE_N1, SAMPLE_N2, SAMPLE_N3, SAMPLE_N5, ListwiseSchema
from tfrec.simulation.cascade import simulate_cascade

SIM = dict(requests=60, users=20, items=800, categories=8, retrieved=100, ranked=40, seed=3)


def _malformed(good: dict):
    """(reason, line) pairs, each line broken in one way."""

    def variant(**changes):
        r = json.loads(json.dumps(good))
        for k, v in changes.items():
            if v is None:
                r.pop(k)
            else:
                r[k] = v
        return json.dumps(r)

    extra = [x for x in good["retrieved"] if x not in good["ranking"]][0]
    return [
        ("bad_json", "{not json"),
        ("bad_json", ""),
        ("bad_json", "[1, 2]"),
        ("missing_field", variant(exposed=None)),
        ("bad_type", variant(day="monday")),
        ("empty_list", variant(ranking=[])),
        ("duplicate_items", variant(ranking=good["ranking"][:-1] + good["ranking"][:1])),
        ("inconsistent_lengths", variant(ranking_scores=[1.0])),
        ("ranking_not_in_retrieved", variant(ranking=good["ranking"][:-1] + ["i_not_retrieved"])),
        ("exposure_not_in_ranking", variant(exposed=good["exposed"] + [extra])),
        ("label_on_unexposed", variant(clicks=good["clicks"] + [good["ranking"][-1]])),
        ("purchase_without_click",
         variant(purchases=[x for x in good["exposed"] if x not in good["clicks"]][:1])),
        ("unknown_item", variant(retrieved=good["retrieved"] + ["i_unknown"])),
        ("unknown_item", variant(click_history=["i_unknown"])),
    ]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("hybrid")
    logs = str(root / "logs")
    simulate_cascade(CascadeConfig(output=logs, **SIM))
    with open(os.path.join(logs, "requests.jsonl"), encoding="utf-8") as f:
        records = [json.loads(line) for line in f]
    bad = _malformed(records[0])
    with open(os.path.join(logs, "requests.jsonl"), "a", encoding="utf-8") as f:
        for _, line in bad:
            f.write(line + "\n")
        f.write("\xff\n")  # valid UTF-8 ("\u00ff"), not JSON
    with open(os.path.join(logs, "requests.jsonl"), "ab") as f:
        f.write(b"\xff\xfe{}\n")  # not UTF-8
    with open(os.path.join(logs, "items.jsonl"), "a", encoding="utf-8") as f:
        f.write('{"item_id": 5}\n')
    out = str(root / "out")
    cfg = HybridSamplesConfig(inputs=[os.path.join(logs, "requests.jsonl")], items=[os.path.join(logs, "items.jsonl")],
                              output=out, chunk_boundaries=[5, 10, 20], chunk_rates=[0.5, 0.3, 0.2, 0.1],
                              full_eval_lists=True, num_shards=2, runner="DirectRunner")
    stats = run(cfg)
    return cfg, stats, records, bad


def _lists(out, split):
    paths = sorted(glob.glob(os.path.join(out, f"{split}-*-of-*.tfrecord.gz")))
    return [r.numpy() for r in tf.data.TFRecordDataset(paths, compression_type="GZIP")]


def test_accounting_and_dead_letter(prepared):
    cfg, stats, records, bad = prepared
    n_bad = len(bad) + 2
    assert stats["requests_in"] == len(records) + n_bad
    assert sum(stats["requests_written"].values()) == len(records)
    assert stats["requests_rejected"] == n_bad
    assert stats["requests_in"] == sum(stats["requests_written"].values()) + stats["requests_rejected"]
    expected = {}
    for reason, _ in bad:
        expected[reason] = expected.get(reason, 0) + 1
    expected["bad_json"] += 2  # "\xff" (valid UTF-8, not JSON) and undecodable bytes
    assert stats["rejected_by_reason"] == dict(sorted(expected.items()))
    assert set(stats["rejected_by_reason"]) <= set(REASONS)
    assert stats["items_in"] == SIM["items"] + 1 and stats["items_rejected"] == 1
    with open(os.path.join(cfg.output, "deadletter", "deadletter-00000-of-00001.jsonl"), encoding="utf-8") as f:
        dead = [json.loads(line) for line in f]
    assert len(dead) == n_bad + 1
    assert {d["source"] for d in dead} == {"requests", "items"}
    assert all(d["message"] and d["reason"] in REASONS for d in dead)
    for split in ("train", "valid", "test"):
        assert len(_lists(cfg.output, split)) == stats["requests_written"][split]
        assert len(stats["files"][split]) == 2


def test_sample_types_and_sizes(prepared):
    cfg, stats, records, _ = prepared
    by_id = {r["request_id"]: r for r in records}
    types = stats["items_per_sample_type"]
    for split in ("train", "valid", "test"):
        n = stats["requests_written"][split]
        exposed = sum(len(by_id[_request_id(x)]["exposed"]) for x in _lists(cfg.output, split))
        assert types[split]["N1"] == exposed
        assert types[split]["N5"] == 10 * n
        if split == "train":
            assert types[split]["N3"] == 15 * n
        else:  # full_eval_lists: every candidate
            assert types[split]["N3"] == n * (SIM["retrieved"] - SIM["ranked"])
            assert types[split]["N1"] + types[split]["N2"] == n * SIM["ranked"]


def _request_id(serialized):
    from tensorflow_serving.apis import input_pb2

    elwc = input_pb2.ExampleListWithContext.FromString(serialized)
    return elwc.context.features.feature["request_id"].bytes_list.value[0].decode()


def test_written_record_parses_with_the_listwise_spec(prepared):
    cfg, _, records, _ = prepared
    schema = ListwiseSchema.from_json(json.load(open(os.path.join(cfg.output, "schema.json"))))
    assert schema == HCCP
    by_id = {r["request_id"]: r for r in records}
    with open(cfg.items[0], encoding="utf-8") as fh:
        items = {x["item_id"]: x["category"] for x in map(json.loads, fh) if isinstance(x["item_id"], str)}
    serialized = _lists(cfg.output, "train")[:4]
    list_size = 64
    f = schema.parse(tf.constant(serialized), list_size=list_size)
    mask = f["example_mask"].numpy()
    assert f["sample_type"].shape == (4, list_size) and f["request_id"].shape == (4,)
    for b in range(4):
        req = by_id[f["request_id"][b].numpy().decode()]
        n = int(mask[b].sum())
        st = f["sample_type"][b].numpy()
        assert set(st[:n]) <= {SAMPLE_N1, SAMPLE_N2, SAMPLE_N3, SAMPLE_N5} and (st[n:] == -1).all()
        assert (f["click"][b].numpy()[n:] == -1).all()  # padding labels
        ids = [x.decode() for x in f["item_id"][b].numpy()[:n]]
        assert [x for x, t in zip(ids, st) if t == SAMPLE_N1] == [x for x in _rc_order(req) if x in req["exposed"]]
        ranked = [x for x, t in zip(ids, st) if t in (SAMPLE_N1, SAMPLE_N2)]
        assert f["rc_position"][b].numpy()[:len(ranked)].tolist() == list(range(len(ranked)))
        rank = f["rank"][b].numpy()[:len(ranked)]
        np.testing.assert_array_equal(rank, [req["ranking"].index(x) + 1 for x in ranked])
        expected_rc = [r - ((x in req["exposed"]) + (x in req["clicks"])) * len(req["ranking"])
                       for r, x in zip(rank, ranked)]
        np.testing.assert_array_equal(f["rc"][b].numpy()[:len(ranked)], expected_rc)
        assert sorted(expected_rc) == expected_rc
        assert [x.decode() for x in tf.sparse.to_dense(f["all_scenario_clicks"]).numpy()[b] if x] == \
            req["all_scenario_clicks"]
        history = [x.decode() for x in tf.sparse.to_dense(f["click_history"]).numpy()[b] if x]
        assert history == req["click_history"]
        categories = [x.decode() for x in tf.sparse.to_dense(f["click_history_category"]).numpy()[b] if x]
        assert categories == [items[x] for x in req["click_history"]]
        assert int(f["num_ranked"][b]) == len(req["ranking"]) and int(f["num_exposed"][b]) == len(req["exposed"])
        clicks = f["click"][b].numpy()[:n]
        assert {x for x, c in zip(ids, clicks) if c == 1.0} == set(req["clicks"])


def _rc_order(req):
    """Clicked impressions, unclicked impressions, unexposed, each in ranking order."""
    return sorted(req["ranking"], key=lambda x: -((x in req["exposed"]) + (x in req["clicks"])) * 10_000
                  + req["ranking"].index(x))


def test_deterministic_rerun(prepared, tmp_path):
    cfg, stats, _, _ = prepared
    again = HybridSamplesConfig(**{**cfg.__dict__, "output": str(tmp_path / "again")})
    stats2 = run(again)
    assert stats2["requests_written"] == stats["requests_written"]
    for split in ("train", "valid", "test"):
        assert _lists(cfg.output, split) == _lists(again.output, split)


def test_split_by_day_and_by_hash():
    from pipelines.hybrid_samples.pipeline import BuildLists

    fn = BuildLists(HybridSamplesConfig(split_by="day", valid_days=[2], test_days=[3]), HCCP, 2)
    fn.setup()
    assert [fn.split_of({"day": d}, 0) for d in range(5)] == ["train", "train", "valid", "test", "train"]
    fn = BuildLists(HybridSamplesConfig(split_ratios=[0.5, 0.25, 0.25]), HCCP, 2)
    fn.setup()
    splits = [fn.split_of({"day": 0}, fn.splitter.hash(f"r{i}".encode())) for i in range(4000)]
    for split, share in (("train", 0.5), ("valid", 0.25), ("test", 0.25)):
        assert abs(splits.count(split) / 4000 - share) < 5 * (share * (1 - share) / 4000) ** 0.5


def test_ranking_scores_must_be_numbers():
    from pipelines.hybrid_samples.validate import parse_request

    items = {f"i{k}": (f"i{k}", "c0", 1.0) for k in range(5)}
    req = {"request_id": "r", "day": 0, "scenario": "s0", "user": {"user_id": "u", "user_segment": "g"},
           "retrieved": ["i0", "i1", "i2"], "ranking": ["i1", "i0"], "ranking_scores": [0.3, "x"],
           "exposed": ["i1"], "clicks": [], "purchases": []}
    assert parse_request(json.dumps(req).encode(), ("user_id", "user_segment"), items).reason == "bad_type"
    req["ranking_scores"] = [0.3, 0.1]
    assert parse_request(json.dumps(req).encode(), ("user_id", "user_segment"), items)["ranking"] == ["i1", "i0"]


def test_the_output_holds_the_validated_item_table(prepared):
    cfg, stats, records, _ = prepared
    from export.preranking import read_item_table
    from pipelines.hybrid_samples import ITEMS_FILE

    with open(cfg.items[0], encoding="utf-8") as f:
        table = {}
        for line in f:
            item = json.loads(line)
            if isinstance(item.get("item_id"), str):  # the appended bad line ({"item_id": 5}) is not an item
                table[item["item_id"]] = item
    with open(os.path.join(cfg.output, ITEMS_FILE), encoding="utf-8") as f:
        written = [json.loads(line) for line in f]
    assert [w["item_id"] for w in written] == sorted(table) and len(written) == stats["items_in_table"]
    assert all(w == {k: table[w["item_id"]][k] for k in ("item_id", "category", "price")} for w in written)
    assert len(read_item_table(os.path.join(cfg.output, ITEMS_FILE))) == len(table)  # what `tfrec export --items` reads


@pytest.fixture(scope="module")
def small_logs(tmp_path_factory):
    logs = str(tmp_path_factory.mktemp("hybrid_small") / "logs")
    simulate_cascade(CascadeConfig(output=logs, **{**SIM, "requests": 30}))
    return logs


def _prepare_hybrid(requests, items, out, capsys):
    from tfrec.cli import main

    code = main(["prepare-hybrid", "--input", requests, "--items", items, "--out", out,
                 "--set", "hybrid.num_shards=1"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_utf8_bom_costs_no_record_and_rejected_items_are_in_the_summary(small_logs, tmp_path, capsys):
    for name in ("requests.jsonl", "items.jsonl"):
        with open(os.path.join(small_logs, name), "rb") as f, open(tmp_path / name, "wb") as out:
            out.write(b"\xef\xbb\xbf" + f.read())
    with open(tmp_path / "items.jsonl", "a", encoding="utf-8") as f:
        f.write('{"item_id": "i_bad", "category": "c0", "price": "cheap"}\n')
    code, out, err = _prepare_hybrid(str(tmp_path / "requests.jsonl"), str(tmp_path / "items.jsonl"),
                                     str(tmp_path / "out"), capsys)
    assert code == 0, err
    stats = json.load(open(tmp_path / "out" / "stats.json"))
    assert stats["requests_rejected"] == 0 and stats["rejected_by_reason"] == {}
    assert sum(stats["requests_written"].values()) == 30
    assert stats["items_rejected"] == 1 and stats["items_in_table"] == SIM["items"]  # only the appended bad line
    lines = dict(re.split(r"\s{2,}", line.strip()) for line in out.splitlines()[1:])
    assert lines["items rejected"] == "1" and lines["requests rejected"] == "0"
    assert lines["items in"] == f"{SIM['items'] + 1:,}"


def test_the_export_item_table_reader_drops_a_bom(tmp_path):
    from export.preranking import read_item_table

    path = tmp_path / "items.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b'{"item_id": "i0", "category": "c0", "price": 1.5}\n'
                     b'{"item_id": "i1", "category": "c1", "price": 2}\n')
    items = [tf.train.Example.FromString(x).features.feature for x in read_item_table(str(path))]
    assert [f["item_id"].bytes_list.value[0] for f in items] == [b"i0", b"i1"]


def test_no_usable_requests_exit_non_zero_with_one_line(small_logs, tmp_path, capsys):
    items = os.path.join(small_logs, "items.jsonl")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    code, out, err = _prepare_hybrid(str(empty), items, str(tmp_path / "out_empty"), capsys)
    assert code == 1 and out == ""
    assert err.strip().count("\n") == 0 and "no requests in" in err and "empty request logs" in err, err

    rejected = tmp_path / "rejected.jsonl"
    with open(os.path.join(small_logs, "requests.jsonl"), encoding="utf-8") as f, open(rejected, "w") as out_f:
        for line in f:  # every request names an item the table does not have
            r = json.loads(line)
            r["click_history"] = ["i_unknown"]
            out_f.write(json.dumps(r) + "\n")
    code, out, err = _prepare_hybrid(str(rejected), items, str(tmp_path / "out_rejected"), capsys)
    assert code == 1 and out == ""
    assert err.strip().count("\n") == 0, err
    assert "all 30 requests were rejected (unknown_item 30)" in err and "deadletter" in err
    # The dead letter and stats.json are written before the run fails, so the reason can be read there.
    assert json.load(open(tmp_path / "out_rejected" / "stats.json"))["rejected_by_reason"] == {"unknown_item": 30}
