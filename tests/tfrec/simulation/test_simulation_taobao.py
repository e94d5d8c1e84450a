"""The Taobao simulator: both layouts, byte-identical reruns, exact row counts, the real files' quirks (CRLF,
NULL brands, empty and missing profiles, the trailing-space header), clicks that depend on the history, and the
requests pipeline reading every simulated row of either layout with the same counts."""

import json
import os

import numpy as np
import pytest

from pipelines.taobao.pipeline import run_requests
from tfrec.config_taobao import TaobaoConfig, TaobaoSimConfig
from tfrec.simulation.taobao import FILES, simulate_rows, simulate_taobao
from tests.support import ROOT

SMALL = dict(impressions=3000, users=300, ads=400, categories=12, brands=60, campaigns=100, customers=50,
             behaviors_per_day=3.0, null_brand_rate=0.1, empty_profile_rate=0.2, no_profile_rate=0.1)


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("taobao_sim"))
    return out, simulate_taobao(TaobaoSimConfig(**SMALL, layout="both", crlf=True, output=out))


def _lines(path):
    with open(path, "rb") as f:
        return f.read().split(b"\r\n")[:-1]


def test_files_counts_and_quirks(sim):
    out, meta = sim
    assert meta["rows"]["raw_sample"] == meta["rows"]["joined"] == meta["impressions"] == 3000
    raw = _lines(os.path.join(out, FILES["raw_sample"]))
    assert len(raw) == 3001 and raw[0] == b"user,time_stamp,adgroup_id,pid,nonclk,clk"
    assert sum(int(x.split(b",")[-1]) for x in raw[1:]) == meta["clicks"]
    with open(os.path.join(out, FILES["raw_sample"]), "rb") as f:
        data = f.read()
    assert data.count(b"\r\n") == data.count(b"\n") == 3001  # every line ends with CRLF
    profile = _lines(os.path.join(out, FILES["user_profile"]))
    assert profile[0].endswith(b"new_user_class_level ")
    assert len(profile) - 1 == 300 - meta["users_without_profile"] and meta["users_without_profile"] > 0
    assert any(x.split(b",")[5] == b"" for x in profile[1:]) and any(x.endswith(b",") for x in profile[1:])
    ads = _lines(os.path.join(out, FILES["ad_feature"]))
    assert sum(x.split(b",")[4] == b"NULL" for x in ads[1:]) == meta["null_brand_ads"] > 0
    behaviors = _lines(os.path.join(out, FILES["behavior_log"]))
    assert {x.split(b",")[2] for x in behaviors[1:]} <= {b"pv", b"cart", b"fav", b"buy"}
    joined = _lines(os.path.join(out, FILES["joined"]))
    assert joined[0].endswith(b",click_sequence") and joined[1].split(b",")[1].startswith(b"2017-05-")
    assert sum(int(x.split(b",")[0]) for x in joined[1:]) == meta["clicks"]


def test_reruns_are_byte_identical(sim, tmp_path):
    out, _ = sim
    again = str(tmp_path / "again")
    simulate_taobao(TaobaoSimConfig(**SMALL, layout="both", crlf=True, output=again))
    for name in FILES.values():
        with open(os.path.join(out, name), "rb") as a, open(os.path.join(again, name), "rb") as b:
            assert a.read() == b.read(), name


def test_clicks_depend_on_the_recent_behaviour():
    cfg = TaobaoSimConfig(**SMALL)
    rows = simulate_rows(cfg)["rows"]
    flat = simulate_rows(TaobaoSimConfig(**{**SMALL, "history_weight": 0.0, "brand_weight": 0.0}))["rows"]
    from tfrec.metrics.classification import auc

    assert auc(rows["clk"], rows["prob"]) > auc(flat["clk"], flat["prob"]) + 0.05
    assert 0.02 < rows["clk"].mean() < 0.2


def test_the_pipeline_reads_every_row_of_both_layouts(sim, tmp_path):
    out, meta = sim
    common = dict(num_shards=1, valid_share=0.0)
    paths = {k: [os.path.join(out, FILES[k])] for k in ("raw_sample", "ad_feature", "user_profile", "behavior_log")}
    a = run_requests(TaobaoConfig(**paths, output=str(tmp_path / "a"), **common))
    j = run_requests(TaobaoConfig(joined=[os.path.join(out, FILES["joined"])], output=str(tmp_path / "j"), **common))
    for stats in (a, j):
        assert stats["impressions_rejected"] == 0 and stats["rejected_by_source"] == {}
        assert sum(stats["impressions_written"].values()) == 3000 and sum(stats["clicks"].values()) == meta["clicks"]
    assert a["impressions_written"] == j["impressions_written"] and a["requests_written"] == j["requests_written"]
    assert sum(a["requests_written"].values()) == meta["requests"]
    assert a["impressions_written"]["test"] > 0 and a["mean_history_length"]["test"] > 0
    with open(os.path.join(out, "meta.json"), encoding="utf-8") as f:
        assert json.load(f)["impressions"] == 3000


def test_simulate_taobao_command(tmp_path, capsys):
    """``tfrec simulate-taobao`` (the README's command): exactly ``--rows`` impressions in the chosen layout, the
    same files as the library call; no output directory is a usage error (exit 2)."""
    from tfrec.cli import main

    out = str(tmp_path / "cli")
    small = [a for k, v in SMALL.items() if k != "impressions" for a in ("--set", f"taobao_sim.{k}={v}")]
    assert main(["simulate-taobao", "--out", out, "--rows", "1200", "--layout", "both", "--seed", "7", *small]) == 0
    assert "wrote 1,200 impressions (both layout, simulated)" in capsys.readouterr().out
    for kind in ("raw_sample", "joined"):
        with open(os.path.join(out, FILES[kind]), encoding="utf-8") as f:
            assert len(f.read().splitlines()) == 1 + 1200
    lib = str(tmp_path / "lib")
    simulate_taobao(TaobaoSimConfig(**{**SMALL, "impressions": 1200}, layout="both", seed=7, output=lib))
    for name in FILES.values():
        with open(os.path.join(out, name), "rb") as a, open(os.path.join(lib, name), "rb") as b:
            assert a.read() == b.read(), name
    assert main(["simulate-taobao", "--rows", "10"]) == 2
    assert "no output directory given" in capsys.readouterr().err


def test_the_documented_taobao_config_loads():
    """``configs/hccp_taobao.yaml`` (read by the README's prepare-taobao and experiment commands) is valid and
    sets what the Taobao lists need: the click task only, ISH@2 and @5, room for the pool negatives."""
    from tfrec.config import load_config

    cfg = load_config(os.path.join(ROOT, "configs", "hccp_taobao.yaml"))
    assert cfg.model.name == "three_tower" and cfg.model.tasks == ["click"] and cfg.model.loss.task_weights == [0.98]
    assert cfg.preranking.hit_ks == [2, 5]
    assert cfg.preranking.eval_list_size > cfg.taobao.pool_samples
    assert cfg.din.max_history == cfg.taobao.max_history


@pytest.mark.parametrize("lost", ["train", "requests"])
def test_the_requests_pipeline_fails_when_a_sink_loses_a_record(sim, tmp_path, monkeypatch, lost):
    """The accounting counts what the sinks wrote (DIN examples and request records), not what the parser built: a
    record dropped before a sink fails the run and writes no stats.json."""
    from pipelines.common import sink
    from pipelines.common.rows import RowAccountingError

    out, _ = sim
    original = sink._WriteParts.process
    dropped = []

    def lossy(self, element):
        destination, records = element
        request_record = records and records[0].startswith(b"{")
        if records and not dropped and destination[0] == "train" and request_record == (lost == "requests"):
            dropped.append(destination)
            element = (destination, records[1:])
        return original(self, element)

    monkeypatch.setattr(sink._WriteParts, "process", lossy)
    paths = {k: [os.path.join(out, FILES[k])] for k in ("raw_sample", "ad_feature", "user_profile", "behavior_log")}
    what = "request records" if lost == "requests" else "DIN examples"
    with pytest.raises(RowAccountingError, match=f"taobao: the sinks wrote .* {what}"):
        run_requests(TaobaoConfig(**paths, output=str(tmp_path / "a"), num_shards=1, valid_share=0.0))
    assert dropped and not (tmp_path / "a" / "stats.json").exists()
