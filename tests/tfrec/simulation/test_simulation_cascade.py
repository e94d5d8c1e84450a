"""Tests of the recommendation-cascade simulator (``tfrec.simulation.cascade``)."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest

from pipelines.hybrid_samples.validate import Rejection, parse_item, parse_request
from tfrec.config import CascadeConfig, ConfigError, load_config
from tfrec.simulation import cascade

SMALL = dict(requests=400, users=80, items=2000, categories=10, retrieved=200, ranked=60)


def _read(path):
    with open(path, "r", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("cascade"))
    measured = cascade.simulate_cascade(CascadeConfig(output=out, **SMALL))
    return out, measured, _read(os.path.join(out, "requests.jsonl")), _read(os.path.join(out, "items.jsonl"))


def test_deterministic_by_seed(sim, tmp_path):
    out, _, _, _ = sim
    again, other = str(tmp_path / "a"), str(tmp_path / "b")
    cascade.simulate_cascade(CascadeConfig(output=again, **SMALL))
    cascade.simulate_cascade(CascadeConfig(output=other, **{**SMALL, "seed": 7}))
    for name in ("requests.jsonl", "items.jsonl"):
        with open(os.path.join(out, name), "rb") as f, open(os.path.join(again, name), "rb") as g:
            assert f.read() == g.read(), name
    with open(os.path.join(out, "meta.json")) as f, open(os.path.join(again, "meta.json")) as g:
        assert json.load(f)["measured"] == json.load(g)["measured"]
    with open(os.path.join(out, "requests.jsonl"), "rb") as f, open(os.path.join(other, "requests.jsonl"), "rb") as g:
        assert f.read() != g.read()


def test_cascade_structure(sim):
    _, _, records, items = sim
    assert len(records) == SMALL["requests"]
    table = {}
    for line in items:
        item_id, features = parse_item(json.dumps(line).encode(), ("item_id", "category"), ("price",))
        table[item_id] = features
    assert len(table) == SMALL["items"]
    ids = set()
    for r in records:
        assert not isinstance(parse_request(json.dumps(r).encode(), ("user_id", "user_segment"), table), Rejection)
        assert len(r["retrieved"]) == SMALL["retrieved"] and len(set(r["retrieved"])) == SMALL["retrieved"]
        assert r["ranking"] and set(r["ranking"]) == set(r["retrieved"][:SMALL["ranked"]])  # pre-ranking's top N^r
        assert 8 <= len(r["exposed"]) <= 12 and set(r["exposed"]) <= set(r["ranking"])
        assert set(r["clicks"]) <= set(r["exposed"])  # clicks only on impressions
        assert set(r["purchases"]) <= set(r["clicks"])  # purchases only after clicks
        assert set(r["clicks"]) <= set(r["all_scenario_clicks"])
        assert set(r["purchases"]) <= set(r["all_scenario_purchases"])
        assert r["ranking_scores"] == sorted(r["ranking_scores"], reverse=True)
        assert r["scenario"] in ("s0", "s1") and 0 <= r["day"] < 4
        assert len(r["click_history"]) <= cascade.HISTORY
        ids.add(r["request_id"])
    assert len(ids) == len(records)
    # two scenarios: in-scenario and all-scenario clicks differ for a good share of requests
    differ = np.mean([set(r["clicks"]) != set(r["all_scenario_clicks"]) for r in records])
    assert differ > 0.1
    assert {r["scenario"] for r in records} == {"s0", "s1"}


def test_measured_properties(sim):
    _, m, records, _ = sim
    exposures = [len(r["exposed"]) for r in records]
    assert m["impressions_per_request"]["mean"] == pytest.approx(np.mean(exposures))
    assert 9.0 < np.mean(exposures) < 11.0
    assert 0.02 < m["click_rate"] < 0.4 and 0.0 < m["purchase_per_click"] < 0.6
    # long tail: the most popular 10% of the items hold most of the popularity mass and far more than 10% of the
    # impressions; many items are never shown
    tail = m["top10pct_items_share"]
    assert tail["popularity"] > 0.6 and tail["impressions"] > 0.2 and tail["retrievals"] > 0.15
    assert m["items_ever_exposed"] < SMALL["items"]
    # the ranking scorer is least accurate on tail items (pairwise order accuracy against the true preference)
    acc = m["ranking_pairwise_accuracy"]
    assert acc["q0"] > acc["q4"] + 0.1
    assert m["ranking_pairs_per_quintile"]["q4"] > 100


def test_pool_has_unretrieved_items(sim):
    _, _, records, items = sim
    for r in records[:20]:
        assert len({x["item_id"] for x in items} - set(r["retrieved"])) == SMALL["items"] - SMALL["retrieved"]


def test_config_validation_and_overrides():
    cfg = load_config(None, ["cascade.requests=10", "cascade.ranked=20"])
    assert cfg.cascade.requests == 10 and cfg.cascade.ranked == 20
    with pytest.raises(ConfigError, match="cascade.retrieved"):
        load_config(None, ["cascade.retrieved=100", "cascade.ranked=200"])
    with pytest.raises(ConfigError, match="cascade.scenarios"):
        load_config(None, ["cascade.scenarios=1"])
    with pytest.raises(ValueError, match="output"):
        cascade.simulate_cascade(dataclasses.replace(CascadeConfig(), output=""))


def test_cli(tmp_path, capsys):
    from tfrec.cli import main

    out = str(tmp_path / "logs")
    rc = main(["simulate-cascade", "--out", out, "--requests", "30", "--set", "cascade.items=600",
               "--set", "cascade.retrieved=100", "--set", "cascade.ranked=30"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "wrote 30 requests" in printed and "ranking order accuracy, tail items" in printed
    assert len(_read(os.path.join(out, "requests.jsonl"))) == 30
    assert main(["simulate-cascade"]) == 2
    assert "no output directory" in capsys.readouterr().err
    assert main(["prepare-hybrid", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tfrec prepare-hybrid: error: give the request logs") and "\n" not in err
    assert main(["prepare-hybrid", "--input", str(tmp_path / "none.jsonl"), "--items", "x", "--out", "y"]) == 2
    assert "no file matches" in capsys.readouterr().err


def test_click_history_is_the_users_earlier_clicks(sim):
    _, _, records, _ = sim
    seen = {}
    for r in records:
        past = seen.setdefault(r["user"]["user_id"], [])
        assert r["click_history"] == past[-cascade.HISTORY:]
        past.extend(r["clicks"])
    assert sum(bool(r["click_history"]) for r in records) > len(records) / 2
