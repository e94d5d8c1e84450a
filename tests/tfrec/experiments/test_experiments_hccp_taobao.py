"""``tfrec experiment hccp-taobao --quick`` end to end at a tiny size through the command line (simulated Taobao
files -> requests -> DIN -> lists -> variants -> Table 2): the report's numbers equal the run records, and the
AUC and ISH@2 of a run recomputed from its saved test predictions with scikit-learn and a plain loop; the report's
statistics against NumPy on hand-made results; the protocol's dataset check."""

import csv
import json
import math
import os

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from tfrec.data import DatasetError
from tfrec.experiments import Options
from tfrec.experiments.core import registry
from tfrec.experiments.core.store import Cell
from tfrec.experiments.hccp import taobao as hccp_taobao
from tfrec.experiments.hccp import taobao_report as hccp_taobao_report

TINY = ["taobao_sim.impressions=3000", "taobao_sim.users=250", "taobao_sim.ads=300", "taobao_sim.categories=10",
        "taobao_sim.brands=40", "taobao_sim.campaigns=100", "taobao_sim.customers=50", "taobao.valid_share=0.2",
        "din.epochs=1", "din.hidden_units=[16, 8]", "din.hash_bins=2000", "model.hash_bins=2000",
        "model.embedding_dim=4", "model.num_experts=2", "model.expert_units=[8]", "model.item_units=[8]",
        "model.cross_units=[4]", "model.output_dim=8", "train.epochs=1"]
SETTINGS = ["base", "copr", "rethink", "hccp"]


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    from tfrec.cli import main

    out = str(tmp_path_factory.mktemp("hccp_taobao"))
    sets = [a for kv in TINY for a in ("--set", kv)]
    assert main(["experiment", "hccp-taobao", "--quick", "--seeds", "1", "--out", out, "--settings",
                 ",".join(SETTINGS), *sets]) == 0
    return out


def _cells(out):
    results = {}
    for s in SETTINGS:
        with open(os.path.join(out, "cells", "hccp-taobao", s, "seed-2020", "result.json"), encoding="utf-8") as f:
            results[s] = json.load(f)
    return results


def test_report_numbers_are_the_runs(experiment):
    report = os.path.join(experiment, "hccp-taobao")
    with open(os.path.join(report, "results.csv"), newline="", encoding="utf-8") as f:
        rows = {r["setting"]: r for r in csv.DictReader(f)}
    assert list(rows) == SETTINGS
    cells = _cells(experiment)
    for s in SETTINGS:
        test = cells[s]["run"]["test"]
        for key in ("AUC", "ISH@2", "ISH@5"):
            assert float(rows[s][f"{key}_mean"]) == test[key]
            assert float(rows[s][f"{key}_paper"]) == hccp_taobao_report.PAPER[s][key]
        assert cells[s]["run"]["config"]["model"]["variant"] == s
    assert float(rows["rethink"]["AUC_diff"]) == pytest.approx(cells["rethink"]["run"]["test"]["AUC"]
                                                               - cells["base"]["run"]["test"]["AUC"])
    md = open(os.path.join(report, "results.md"), encoding="utf-8").read()
    assert "0.7807 (+2.92pp)" in md and "| COPR | 1 |" in md  # the paper's HCCP row beside ours
    assert "No N2 samples" in md and "No N3 samples" in md and "Ranker: DIN, test AUC" in md
    with open(os.path.join(experiment, "quick_taobao_data", "lists", "stats.json"), encoding="utf-8") as f:
        stats = json.load(f)
    assert stats["items_per_sample_type"]["test"]["N2"] == stats["items_per_sample_type"]["test"]["N3"] == 0
    assert f"{stats['ranker']['test_auc']:.4f}" in md


def test_metrics_recomputed_from_the_saved_predictions(experiment):
    cell = _cells(experiment)["hccp"]
    data = np.load(os.path.join(cell["run_dir"], hccp_taobao.PREDICTIONS))
    imp = data["example_mask"] & (data["sample_type"] == 1)
    assert cell["run"]["test"]["AUC"] == pytest.approx(roc_auc_score(data["click"][imp], data["score"][imp]),
                                                       abs=1e-9)
    hits = []
    for score, click, m in zip(data["score"], data["click"], imp):
        n = int((click[m] > 0.5).sum())
        if n:
            top = sorted(np.flatnonzero(m), key=lambda j: -score[j])[:2]
            hits.append(sum(click[j] > 0.5 for j in top) / n)
    assert cell["run"]["test"]["ISH@2"] == pytest.approx(np.mean(hits), abs=1e-9)
    assert cell["run"]["test"]["requests_with_click"] == len(hits) > 0


def test_report_statistics_against_numpy(tmp_path):
    rng = np.random.default_rng(3)
    settings = registry.get("hccp-taobao").settings(Options())
    assert [s.params["method"] for s in settings] == ["Base", "Base+ListNet", "Base+ListMLE", "COPR", "Rethink",
                                                      "HCCP"]
    results, values = {}, {}
    for s in settings:
        for seed in (1, 2, 3):
            v = values[(s.name, seed)] = rng.random(3)
            results[Cell("hccp-taobao", s.name, seed)] = {"run": {"test": {
                "AUC": float("nan") if (s.name, seed) == ("copr", 3) else float(v[0]), "ISH@2": float(v[1]),
                "ISH@5": float(v[2])}}}
    rows = {r["setting"]: r for r in hccp_taobao_report.aggregate(settings, results)}
    auc = {s.name: np.array([values[(s.name, seed)][0] for seed in (1, 2, 3)]) for s in settings}
    assert rows["base"]["AUC_mean"] == pytest.approx(auc["base"].mean())
    assert rows["base"]["AUC_std"] == pytest.approx(auc["base"].std(ddof=1)) and "AUC_diff" not in rows["base"]
    d = auc["rethink"] - auc["base"]
    assert rows["rethink"]["AUC_diff"] == pytest.approx(d.mean())
    assert rows["rethink"]["AUC_t"] == pytest.approx(d.mean() / (d.std(ddof=1) / math.sqrt(3)))
    assert rows["copr"]["AUC_n"] == 2  # a NaN seed is left out
    assert rows["hccp"]["ISH@5_paper_diff"] == pytest.approx(0.7675 - 0.7531)
    files = hccp_taobao_report.build_taobao_report(registry.get("hccp-taobao"), settings, results, str(tmp_path),
                                                   Options())
    md = open(files[1], encoding="utf-8").read()
    assert f"{100 * d.mean():+.2f}pp" in md


def test_check_data(tmp_path):
    from tfrec.features import HCCP

    data = tmp_path / "hccp"
    data.mkdir()
    (data / "schema.json").write_text(json.dumps(HCCP.to_json()))
    with pytest.raises(DatasetError, match="not the Taobao lists"):
        hccp_taobao.check_data(str(data))
    with pytest.raises(DatasetError):
        hccp_taobao.check_data(str(tmp_path / "missing"))


def test_prepare_taobao_command_on_real_layout_files(tmp_path, capsys):
    """``tfrec prepare-taobao`` on files in the joined layout (the test's small file): requests, DIN, lists."""
    from tfrec.cli import main

    from tests.support import taobao_files as F

    paths = F.write(str(tmp_path / "raw"), "joined")
    out = str(tmp_path / "prep")
    sets = [a for kv in ["din.epochs=1", "din.hidden_units=[8]", "din.hash_bins=100", "taobao.valid_share=0.0",
                         "taobao.num_shards=1", "taobao.pool_samples=1"] for a in ("--set", kv)]
    assert main(["prepare-taobao", "--joined", paths["joined"], "--out", out, *sets]) == 0
    assert f"prepared {os.path.join(out, 'lists')}" in capsys.readouterr().out
    with open(os.path.join(out, "lists", "stats.json"), encoding="utf-8") as f:
        stats = json.load(f)
    assert stats["requests_written"] == {"train": 4, "valid": 0, "test": 1}
    assert stats["items_per_sample_type"]["test"] == {"N1": 1, "N2": 0, "N3": 0, "N5": 1}
    hccp_taobao.check_data(os.path.join(out, "lists"))
    assert main(["prepare-taobao", "--out", out]) == 2
    assert "give the Alibaba files" in capsys.readouterr().err
