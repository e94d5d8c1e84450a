"""The Taobao Beam pipelines on small files of both layouts written by the tests (CRLF, NULL brand, empty profile
values, the trailing-space header): exact row, request and click counts, the dead letter, the DIN examples; then
the lists scored by a DIN scorer: ranking orders from its scores, the arrangement, N5 pool negatives, no N2 / N3."""

import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from pipelines.criteo.parse import InputError
from pipelines.taobao.lists_pipeline import run_lists
from pipelines.taobao.pipeline import run_requests
from tfrec.config_taobao import DinConfig, TaobaoConfig
from tfrec.data_taobao import TAOBAO_LISTS, din_dataset

from tests.support import taobao_files as F


def _cfg(paths, out, **kw):
    return TaobaoConfig(**{k: [v] for k, v in paths.items()}, output=out, num_shards=1, valid_share=0.0, **kw)


@pytest.fixture(scope="module")
def alibaba(tmp_path_factory):
    root = tmp_path_factory.mktemp("taobao_alibaba")
    paths = F.write(str(root / "raw"), "alibaba", crlf=True)
    cfg = _cfg(paths, str(root / "out"), lists_output=str(root / "lists"), pool_samples=2)
    return cfg, run_requests(cfg)


@pytest.fixture(scope="module")
def joined(tmp_path_factory):
    root = tmp_path_factory.mktemp("taobao_joined")
    paths = F.write(str(root / "raw"), "joined", crlf=True)
    cfg = _cfg(paths, str(root / "out"))
    return cfg, run_requests(cfg)


def _records(pattern):
    return [bytes(r.numpy()) for f in sorted(glob.glob(pattern))
            for r in tf.data.TFRecordDataset(f, compression_type="GZIP")]


def _dead(out):
    with open(os.path.join(out, "deadletter", "deadletter-00000-of-00001.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_alibaba_layout_counts(alibaba):
    cfg, stats = alibaba
    e = F.EXPECTED
    assert stats["impressions_in"] == e["rows_in"] == 13
    assert stats["impressions_written"] == e["written"] and stats["clicks"] == e["clicks"]
    assert stats["impressions_rejected"] == 8 and stats["requests_written"] == e["requests"]
    assert stats["rejected_by_source"] == {"behavior_log": {"bad_btag": 1}, "raw_sample": e["raw_rejected"],
                                           "requests": e["request_rejected"]}
    assert stats["rows_in"] == {"ad_feature": 3, "behavior_log": 6, "raw_sample": 13, "user_profile": 2}
    assert stats["history"] == "behavior" and stats["ads_in_table"] == 3
    dead = _dead(cfg.output)
    assert len(dead) == 9 and sorted(d["reason"] for d in dead if d["source"] == "requests") == [
        "duplicate_impression", "outside_days", "unknown_ad"]
    assert {"source": "raw_sample", "reason": "bad_label"}.items() <= next(
        d for d in dead if d["reason"] == "bad_label").items()
    for split, n in e["written"].items():  # one DIN example per written impression
        assert len(_records(os.path.join(cfg.output, f"{split}-*.tfrecord.gz"))) == n
        assert len(_records(os.path.join(cfg.output, "requests", f"{split}-*.tfrecord.gz"))) == e["requests"][split]
    with open(os.path.join(cfg.output, "items.jsonl"), encoding="utf-8") as f:
        items = [json.loads(line) for line in f]
    assert [i["item_id"] for i in items] == ["10", "11", "12"] and items[0]["brand"] == ""  # NULL brand


def test_alibaba_examples_join_profile_ad_and_history(alibaba):
    cfg, _ = alibaba
    x, y = next(iter(din_dataset(sorted(glob.glob(os.path.join(cfg.output, "train-*.tfrecord.gz"))), 16, 4, False)))
    rows = {(u.decode(), i.decode()): k for k, (u, i) in enumerate(zip(x["user_id"].numpy(), x["item_id"].numpy()))}
    k = rows[("2", "10")]
    assert y.numpy()[k] == 1.0 and x["brand"].numpy()[k] == b""  # the merged click; NULL brand
    assert x["pvalue_level"].numpy()[k] == b"" and x["new_user_class_level"].numpy()[k] == b""  # empty values
    assert x["cms_segid"].numpy()[k] == b"6" and x["user_segment"].numpy()[k] == b"4"
    assert x["click_history_category"].numpy()[k].tolist() == [b"100", b"", b"", b""]
    assert x["click_history_brand"].numpy()[k].tolist() == [b"501", b"", b"", b""]
    k = rows[("1", "11")]
    assert x["category"].numpy()[k] == b"101" and x["price"].numpy()[k] == pytest.approx(99.0)
    assert x["new_user_class_level"].numpy()[k] == b"4"  # the last, trailing-space header column
    test = next(iter(din_dataset(sorted(glob.glob(os.path.join(cfg.output, "test-*.tfrecord.gz"))), 4, 4, False)))[0]
    assert test["click_history_category"].numpy()[0].tolist() == [b"101", b"100", b"102", b""]


def test_joined_layout_counts_and_click_sequence(joined):
    cfg, stats = joined
    assert stats["layout"] == "joined" and stats["history"] == "sequence"
    assert stats["impressions_in"] == 9 and stats["impressions_rejected"] == 3
    assert stats["impressions_written"] == {"train": 5, "valid": 0, "test": 1}  # ad 13 carries its own features
    assert stats["clicks"] == {"train": 2, "valid": 0, "test": 0}
    assert stats["rejected_by_source"] == {"joined": {"bad_time_stamp": 1},
                                           "requests": {"duplicate_impression": 1, "outside_days": 1}}
    test = next(iter(din_dataset(sorted(glob.glob(os.path.join(cfg.output, "test-*.tfrecord.gz"))), 4, 3, False)))[0]
    assert test["click_history"].numpy()[0].tolist() == [b"11", b"", b""]
    assert test["click_history_category"].numpy()[0].tolist() == [b"101", b"", b""]
    assert test["day"].numpy()[0] == 8  # the local time string maps to the same day as the Unix seconds


def test_both_layouts_give_the_same_examples(alibaba, tmp_path):
    """The joined file of the same impressions, read with the click history, gives the Alibaba examples."""
    cfg, _ = alibaba
    paths = F.write(str(tmp_path / "raw"), "alibaba", crlf=False)
    clicks = run_requests(_cfg({k: v for k, v in paths.items() if k != "behavior_log"}, str(tmp_path / "c")))
    assert clicks["history"] == "clicks" and clicks["impressions_written"] == F.EXPECTED["written"]
    joined = F.write(str(tmp_path / "raw_j"), "joined")
    from tfrec.data_taobao import din_feature_spec

    def examples(out, split):
        parsed = tf.io.parse_example(_records(os.path.join(out, f"{split}-*.tfrecord.gz")), din_feature_spec())
        history = tf.sparse.to_dense(parsed["click_history"]).numpy().tolist()
        rows = zip(parsed["user_id"].numpy(), parsed["item_id"].numpy(), parsed["label"].numpy(), history)
        return sorted((u, i, y, h) for u, i, y, h in rows if u != b"3")  # ad 13 has an ad_feature row only there

    run_requests(_cfg(joined, str(tmp_path / "j")))
    for split in ("train", "test"):
        assert examples(str(tmp_path / "c"), split) == examples(str(tmp_path / "j"), split)


def test_bad_inputs_stop_before_the_run(tmp_path):
    paths = F.write(str(tmp_path / "raw"), "alibaba")
    with open(paths["raw_sample"], "w", encoding="utf-8") as f:
        f.write("user,time_stamp,adgroup_id,pid,clk,nonclk\n1,1494000000,10,p,0,1\n")
    with pytest.raises(InputError, match="not the raw_sample layout"):
        run_requests(_cfg(paths, str(tmp_path / "out")))
    with pytest.raises(ValueError, match="not both or neither"):
        run_requests(TaobaoConfig(raw_sample=[paths["raw_sample"]], joined=[paths["raw_sample"]], output="o"))
    with pytest.raises(ValueError, match="ad_feature is required"):
        run_requests(TaobaoConfig(raw_sample=[paths["raw_sample"]], output=str(tmp_path / "o")))
    with pytest.raises(ValueError, match="history=sequence"):
        run_requests(_cfg(paths, str(tmp_path / "o"), history="sequence"))
    with pytest.raises(FileNotFoundError, match="no file matches"):
        run_requests(TaobaoConfig(raw_sample=[str(tmp_path / "none.csv")], ad_feature=[paths["ad_feature"]],
                                  output=str(tmp_path / "o")))


# ----------------------------------------------------------------------------------------------- lists


@pytest.fixture(scope="module")
def lists(alibaba, tmp_path_factory):
    from tfrec.train_din import build_din, export_scorer

    cfg, _ = alibaba
    din = build_din(DinConfig(hash_bins=97, embedding_dim=4, attention_units=[4], hidden_units=[8], max_history=4))
    scorer = export_scorer(din, str(tmp_path_factory.mktemp("din") / "scorer"))
    stats = run_lists(cfg, scorer, max_history=4, ranker={"name": "untrained"})
    return cfg, stats, din


def test_lists_follow_the_ranker_and_hold_n1_and_n5_only(lists):
    cfg, stats, din = lists
    assert stats["requests_in"] == 4 and stats["requests_written"] == {"train": 3, "valid": 0, "test": 1}
    # N5: 2 of the 3 ads not in the request (ads {12}: 10, 11; {10, 11}: 12; {10}: 11, 12)
    assert stats["items_per_sample_type"]["train"] == {"N1": 4, "N2": 0, "N3": 0, "N5": 5}
    assert set(stats["absent_sample_types"]) == {"N2", "N3"} and stats["ranker"] == {"name": "untrained"}
    # the accounting counts what the sink wrote (pipelines.common.lists), and the files hold exactly that
    for split, n in stats["requests_written"].items():
        assert len(_records(os.path.join(cfg.lists_output, f"{split}-*-of-*.tfrecord.gz"))) == n
    assert stats["requests_rejected"] == 0 and stats["mean_list_size"]["train"] == 9 / 3
    # the ranker's probability of every impression, from the DIN examples of pipeline A
    prob = {}
    for split in ("train", "test"):
        for x, _ in din_dataset(sorted(glob.glob(os.path.join(cfg.output, f"{split}-*.tfrecord.gz"))), 16, 4, False):
            p = din(x, training=False)["probability"].numpy()
            for rid, item, v in zip(x["request_id"].numpy(), x["item_id"].numpy(), p):
                prob[(rid.decode(), item.decode())] = v
    serialized = _records(os.path.join(cfg.lists_output, "*-of-*.tfrecord.gz"))
    parsed = TAOBAO_LISTS.parse(tf.constant(serialized), list_size=6)
    seen = 0
    for b, rid in enumerate(parsed["request_id"].numpy()):
        rid = rid.decode()
        mask = parsed["example_mask"].numpy()[b]
        st, items = parsed["sample_type"].numpy()[b][mask], parsed["item_id"].numpy()[b][mask]
        rank, score = parsed["rank"].numpy()[b][mask], parsed["ranker_score"].numpy()[b][mask]
        click, rc_pos = parsed["click"].numpy()[b][mask], parsed["rc_position"].numpy()[b][mask]
        n1 = st == 1
        own = {i.decode() for i in items[n1]}
        expected = [prob[(rid, i.decode())] for i in items[n1]]
        np.testing.assert_allclose(score[n1], expected, rtol=1e-5)
        assert sorted(rank[n1].tolist()) == list(range(1, n1.sum() + 1))
        by_rank = [v for _, v in sorted(zip(rank[n1], expected))]
        assert by_rank == sorted(expected, reverse=True)  # r = 1 is the best-scored impression
        # R^c: the clicked impressions first, then the others, each in ranking order
        arranged = [(-c, r) for _, c, r in sorted(zip(rc_pos[n1], click[n1], rank[n1]))]
        assert arranged == sorted(arranged)
        assert set(st) <= {1, 5} and np.all(score[st == 5] == -1.0) and np.all(rank[st == 5] == -1)
        pool = {i.decode() for i in items[st == 5]}
        assert not pool & own and len(pool) == min(2, 3 - len(own))
        seen += 1
    assert seen == 4


# ------------------------------------------------------------------------------------------ memory on a local runner


def _flattened_producers(build):
    """(producer label, output tag) of the PCollections that enter a Flatten of more than one input in the
    pipeline ``build`` makes (not run): the DirectRunner's FnApiRunner materialises such a Flatten's inputs."""
    import apache_beam as beam
    from apache_beam.pipeline import PipelineVisitor

    class Visitor(PipelineVisitor):
        def __init__(self):
            self.producers = set()

        def visit_transform(self, node):
            if isinstance(node.transform, beam.Flatten) and len(node.inputs) > 1:
                self.producers |= {(pc.producer.full_label, pc.tag) for pc in node.inputs}

    p = beam.Pipeline()
    build(p)
    visitor = Visitor()
    p.visit(visitor)
    return visitor.producers


def test_records_go_to_the_sinks_without_a_materialised_flatten(alibaba, lists):
    """Every DIN example, request and list goes from the ParDo that makes it to the shard sink without a
    multi-input Flatten (memory flat in the number of rows on the DirectRunner), and the sinks still write the
    empty shards (the valid split has no request here)."""
    from pipelines.criteo.stages import DEADLETTER
    from pipelines.taobao.lists_pipeline import build_lists
    from pipelines.taobao.pipeline import build_requests

    cfg, _ = alibaba
    a = _flattened_producers(lambda p: build_requests(p, cfg))
    b = _flattened_producers(lambda p: build_lists(p, cfg, "unused_scorer_dir", 4))
    assert a and b  # the visitor sees the sinks' own Flattens (file names only)
    # only the dead letters (few rows) of the ParDos that make the records are flattened
    assert {tag for label, tag in a if label.startswith("Requests/")} == {DEADLETTER}, a
    assert {tag for label, tag in b if label.startswith("Score/")} == {DEADLETTER}, b
    for path in (os.path.join(cfg.output, "valid-00000-of-00001.tfrecord.gz"),
                 os.path.join(cfg.output, "requests", "valid-00000-of-00001.tfrecord.gz"),
                 os.path.join(cfg.lists_output, "valid-00000-of-00001.tfrecord.gz")):
        assert os.path.exists(path) and _records(path) == [], path
