"""HCCP Fig. 4 (ASH@K of the ranking stage and of pre-ranking, every K): written by the hccp report from a tiny
run, its CSV against a per-request NumPy recomputation from the evaluation's arrays, the aggregation over seeds
and the crossing K."""

import csv
import math
import os

import numpy as np
import pytest

from tests.support.hccp_files import simulate_and_prepare_cascade
from tfrec.config import load_config
from tfrec.experiments import Options, get, run_protocol
from tfrec.experiments.hccp import fig4 as hccp_fig4
from tfrec.experiments.core.store import Cell
from tfrec.features import SAMPLE_N1, SAMPLE_N2, SAMPLE_N3

SEED = 2020
TINY = ["data.batch_size=16", "data.eval_batch_size=64", "data.shuffle_buffer=0", "train.epochs=1",
        "train.replicas=1", "train.log_every_seconds=0", "train.save_every_steps=0", "model.name=three_tower",
        "model.hash_bins=1000", "model.embedding_dim=4", "model.num_experts=2", "model.expert_units=[8]",
        "model.item_units=[8]", "model.cross_units=[4]", "model.output_dim=8",
        "preranking.train_list_size=40", "preranking.eval_list_size=112", "preranking.hit_ks=[5,20,60]",
        "preranking.consistency_ks=[5,20]", "preranking.octile_k=20"]


def _oracle(data, order_by):
    """ASH@K for K = 1..L, one request at a time: sort the request's candidates (stable, by -score), count the
    all-scenario clicks among the first K, divide by |I_u| (distinct non-empty ids), mean over |I_u| > 0."""
    per_request = []
    for u in range(data["item_id"].shape[0]):
        ids, st, m = data["item_id"][u], data["sample_type"][u], data["example_mask"][u].astype(bool)
        clicks = {c for c in data["all_scenario_clicks"][u].tolist() if c != b""}
        if not clicks:
            continue
        slots = [j for j in range(len(ids)) if m[j] and st[j] in (SAMPLE_N1, SAMPLE_N2, SAMPLE_N3)]
        if order_by == "rank":
            slots = [j for j in slots if data["rank"][u, j] >= 1]
            slots.sort(key=lambda j: data["rank"][u, j])
        else:
            slots.sort(key=lambda j: -float(data["score_click"][u, j]))
        hits = np.cumsum([ids[j] in clicks for j in slots])
        per_request.append((hits, len(clicks)))
    longest = max(len(h) for h, _ in per_request)
    return [float(np.mean([(h[min(k, len(h)) - 1] if len(h) else 0) / n for h, n in per_request]))
            for k in range(1, longest + 1)]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("fig4")
    data_dir = simulate_and_prepare_cascade(str(root))
    arrays = {}
    original = hccp_fig4.ash_curves

    def spy(data):  # keeps the evaluation's arrays of each cell, for the oracle
        arrays[len(arrays)] = {k: np.array(v, copy=True) for k, v in data.items()}
        return original(data)

    mp = pytest.MonkeyPatch()
    mp.setattr(hccp_fig4, "ash_curves", spy)
    out = str(root / "exp")
    try:
        summary = run_protocol("hccp", data_dir, [SEED], out, load_config(None, TINY), Options(),
                               only=["base", "hccp"], printer=lambda _: None)
    finally:
        mp.undo()
    return out, summary, arrays


def _csv(path):
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_fig4_csv_equals_the_numpy_recomputation(run):
    out, summary, arrays = run
    report = os.path.join(out, "hccp")
    assert os.path.getsize(os.path.join(report, "fig4_ash.png")) > 0
    assert os.path.join(report, "fig4_ash.csv") in summary["files"]
    rows = _csv(os.path.join(report, "fig4_ash.csv"))
    curves = {}
    for r in rows:
        curves.setdefault(r["curve"], []).append((int(r["k"]), float(r["ash_mean"]), r["ash_std"], int(r["n"])))
    assert list(curves) == ["ranking", "base", "hccp"] and len(arrays) == 2
    for i, setting in enumerate(("base", "hccp")):  # cells run in the settings' order, one seed each
        expected = _oracle(arrays[i], "score")
        got = curves[setting]
        assert [k for k, *_ in got] == list(range(1, len(expected) + 1))
        np.testing.assert_allclose([v for _, v, *_ in got], expected, rtol=1e-12, atol=1e-15)
        assert all(std == "" and n == 1 for *_, std, n in got)  # one seed: no std
        assert 0.0 < expected[-1] <= 1.0 and expected == sorted(expected)  # a cumulative hit rate
    ranking = _oracle(arrays[0], "rank")
    assert len(ranking) == 40  # N^r = 40: the ranking stage ranks no more
    np.testing.assert_allclose([v for _, v, *_ in curves["ranking"]], ranking, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(_oracle(arrays[1], "rank"), ranking, rtol=0, atol=0)  # data only, not the model


def test_fig4_agrees_with_table1s_ash(run):
    out, _, _ = run
    rows = _csv(os.path.join(out, "hccp", "fig4_ash.csv"))
    for setting in ("base", "hccp"):
        cell = Cell("hccp", setting, SEED)
        from tfrec.experiments.core.store import Store

        test = Store(out).cell_result(cell)["run"]["test"]
        curve = {int(r["k"]): float(r["ash_mean"]) for r in rows if r["curve"] == setting}
        for k in (5, 20, 60):
            assert curve[k] == pytest.approx(test[f"ASH@{k}"], rel=1e-12, abs=1e-15)


def test_fig4_mean_and_std_over_seeds_and_crossing(tmp_path):
    settings = [s for s in get("hccp").settings(Options()) if s.name in ("base", "hccp")]
    rng = np.random.default_rng(0)
    results, curves = {}, {}
    ranking = [0.1, 0.3, 0.4, 0.45]
    for s in settings:
        for seed in (1, 2, 3):
            c = np.sort(rng.uniform(0, 1, 6)).tolist()
            curves.setdefault(s.name, []).append(c)
            results[Cell("hccp", s.name, seed)] = {"run": {"fig4_ash": {
                "k": list(range(1, 7)), "preranking": c, "ranking_k": [1, 2, 3, 4], "ranking": ranking}}}
    results[Cell("hccp", "base", 4)] = None  # a cell not run yet
    paths = hccp_fig4.plot_fig4(settings, results, str(tmp_path / "fig4_ash.png"))
    assert [os.path.basename(p) for p in paths] == ["fig4_ash.png", "fig4_ash.csv"]
    rows = _csv(paths[1])
    assert [(r["curve"], int(r["k"]), float(r["ash_mean"])) for r in rows[:4]] == [
        ("ranking", k + 1, v) for k, v in enumerate(ranking)]
    for name, cs in curves.items():
        got = [r for r in rows if r["curve"] == name]
        np.testing.assert_allclose([float(r["ash_mean"]) for r in got], np.mean(cs, axis=0), rtol=1e-14)
        np.testing.assert_allclose([float(r["ash_std"]) for r in got], np.std(cs, axis=0, ddof=1), rtol=1e-12)
        assert {int(r["n"]) for r in got} == {3}
    assert hccp_fig4.crossing_k([0.0, 0.2, 0.5, 0.6, 0.9], ranking) == 3
    assert hccp_fig4.crossing_k([0.2, 0.3, 0.5, 0.6], ranking) == 1
    assert hccp_fig4.crossing_k([0.2, 0.3, 0.5, 0.4], ranking) is None  # below ranking at its last K
    assert hccp_fig4.crossing_k([0.2, 0.1, 0.5, 0.5], ranking) == 3  # dips below at K = 2
    assert hccp_fig4.plot_fig4(settings, {}, str(tmp_path / "none.png")) == []
    assert not math.isnan(float(rows[-1]["ash_std"]))
