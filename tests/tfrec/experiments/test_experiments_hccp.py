"""The ``hccp`` experiment protocol end to end on a tiny simulated cascade (one seed, one epoch, two variants):
the files it writes, table numbers equal to the runs' metrics, resumability; list-wise training and evaluation
through the ``tfrec`` command line; the report's statistics against NumPy on hand-made results."""

import csv
import json
import math
import os

import numpy as np
import pytest

from tests.support.hccp_files import simulate_and_prepare_cascade
from tfrec.config import load_config
from tfrec.data import DatasetError
from tfrec.experiments import Options, run_protocol
from tfrec.experiments.core import registry
from tfrec.experiments.core.store import Cell, Store
from tfrec.experiments.hccp import protocol as hccp
from tfrec.experiments.hccp import report as hccp_report

SEED = 2020
TINY = ["data.batch_size=16", "data.eval_batch_size=64", "data.shuffle_buffer=0", "train.epochs=1",
        "train.replicas=1", "train.log_every_seconds=0", "train.save_every_steps=0", "model.name=three_tower",
        "model.hash_bins=1000",
        "model.embedding_dim=4", "model.num_experts=2", "model.expert_units=[8]",
        "model.item_units=[8]", "model.cross_units=[4]", "model.output_dim=8",
        "preranking.train_list_size=40", "preranking.eval_list_size=112", "preranking.hit_ks=[5,20]",
        "preranking.consistency_ks=[5,20]", "preranking.octile_k=20"]


@pytest.fixture(scope="module")
def hybrid_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("hccp_data")
    out = simulate_and_prepare_cascade(str(root))
    return out


@pytest.fixture(scope="module")
def experiment(hybrid_data, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("hccp_experiment"))
    lines = []
    summary = run_protocol("hccp", hybrid_data, [SEED], out, load_config(None, TINY), Options(),
                           only=["base", "hccp"], printer=lines.append)
    return out, summary, lines


def test_protocol_files_and_numbers(experiment):
    out, summary, lines = experiment
    report = os.path.join(out, "hccp")
    for f in ("results.csv", "results.md", "octiles.png", "run_record.json"):
        assert os.path.getsize(os.path.join(report, f)) > 0, f
    assert summary["cells"] == 2 and summary["computed"] == 2
    assert any("[hccp 2/2 hccp seed 2020] computed: AUC_click" in line for line in lines)  # progress output
    with open(os.path.join(report, "results.csv"), newline="") as f:
        rows = {r["setting"]: r for r in csv.DictReader(f)}
    assert list(rows) == ["base", "hccp"]
    md = open(os.path.join(report, "results.md"), encoding="utf-8").read()
    store = Store(out)
    runs = {s: store.cell_result(Cell("hccp", s, SEED))["run"] for s in rows}
    keys = hccp_report.metric_keys({Cell("hccp", s, SEED): {"run": r} for s, r in runs.items()})
    assert keys["hit"] == ["ISH@5", "ISH@20", "ISPH@5", "ISPH@20", "ASH@5", "ASH@20", "ASPH@5", "ASPH@20"]
    assert keys["consistency"] == ["MAP@5", "MAP@20", "NDCG@5", "NDCG@20"]
    assert "AUC_click" in keys["auc"] and len(keys["octile"]) == 16
    for setting, run in runs.items():
        assert run["train"]["epochs_run"] == 1 and run["config"]["model"]["variant"] == setting
        with open(os.path.join(store.run_dir(Store(out).cell_result(Cell("hccp", setting, SEED))["fingerprint"]),
                               "preranking_metrics.json")) as f:
            assert json.load(f)["test"]["ISH@5"] == run["test"]["ISH@5"]
        for key in keys["hit"] + keys["consistency"] + keys["auc"]:
            value = run["test"][key]
            if value is None or not math.isfinite(value):
                assert rows[setting][f"{key}_mean"] == ""
                continue
            assert float(rows[setting][f"{key}_mean"]) == value  # one seed: the mean is the run's number
            assert rows[setting][f"{key}_std"] == ""  # undefined with one seed, never 0
            assert f"{value:.4f}" in md
        for q, v in enumerate(run["test"]["octile_ISH@20"]):
            cell = rows[setting][f"octile_ISH@20[{q}]_mean"]
            assert (cell == "") if v is None or not math.isfinite(v) else float(cell) == v
    diff = runs["hccp"]["test"]["ISH@5"] - runs["base"]["test"]["ISH@5"]
    assert float(rows["hccp"]["ISH@5_diff"]) == pytest.approx(diff, abs=1e-12)
    assert f"{100 * diff:+.2f} (p n/a)" in md
    for title in ("Table 1: hit rates", "Table 3: consistency", "Δ vs Base, pp", "Fig. 7"):
        assert title in md


def test_rerun_computes_nothing(experiment, hybrid_data):
    out, _, _ = experiment
    again = run_protocol("hccp", hybrid_data, [SEED], out, load_config(None, TINY), Options(),
                         only=["base", "hccp"], printer=lambda _: None)
    assert again["computed"] == 0 and again["skipped"] == 2


def test_cli_trains_and_evaluates_a_listwise_dataset(hybrid_data, tmp_path, capsys):
    from tfrec.cli import main

    model_dir = str(tmp_path / "model")
    sets = [a for kv in TINY + ["model.variant=wo_margin"] for a in ("--set", kv)]
    assert main(["train", "--data", hybrid_data, "--model-dir", model_dir, *sets]) == 0
    assert "best val_auc" in capsys.readouterr().out
    assert os.path.exists(os.path.join(model_dir, "config.yaml"))
    assert main(["evaluate", "--data", hybrid_data, "--model-dir", model_dir, "--split", "valid", *sets]) == 0
    printed = capsys.readouterr().out
    with open(os.path.join(model_dir, "preranking_metrics.json")) as f:
        report = json.load(f)["valid"]
    assert report["requests"] > 0 and "ISH@20" in printed
    assert len(report["octile_ISPH@20"]) == 8

    # The evaluation's graph (one trace, no AutoGraph) scores as the eager model does.
    from tfrec import data as data_lib
    from tfrec.evaluate_preranking import collect
    from tfrec.listwise_data import make_listwise_dataset
    from tfrec.train_preranking import load_listwise_schema, load_trained_preranking

    cfg = load_config(None, TINY + [f"data.dir='{hybrid_data}'", f"train.model_dir='{model_dir}'"])
    model = load_trained_preranking(cfg)
    ds = make_listwise_dataset(data_lib.split_files(hybrid_data, "valid"), load_listwise_schema(hybrid_data), 16,
                               cfg.preranking.eval_list_size, training=False)
    scored = collect(model, ds, model.tasks)
    eager = np.concatenate([model(x, training=False)["click"].numpy() for x, _ in ds])
    np.testing.assert_allclose(scored["score_click"], eager, rtol=1e-5, atol=1e-6)
    assert scored["score_click"].shape[0] == report["requests"]
    # ISH@K (HCCP 4.1.2) by hand from the eager scores: per request with an in-scenario click, the share of its
    # clicked impressions among the top K of its candidates (N1-N3), averaged over those requests.
    fields = {k: np.concatenate([x[k].numpy() for x, _ in ds]) for k in ("example_mask", "sample_type", "click")}
    valid = fields["example_mask"].astype(bool)
    candidates = valid & np.isin(fields["sample_type"], (1, 2, 3))
    clicked = valid & (fields["sample_type"] == 1) & (fields["click"] > 0.5)
    for k in (5, 20):
        hits = []
        for u in range(len(eager)):
            if clicked[u].any():
                top = [j for j in np.argsort(-eager[u], kind="stable") if candidates[u, j]][:k]
                hits.append(clicked[u, top].sum() / clicked[u].sum())
        assert report[f"ISH@{k}"] == pytest.approx(np.mean(hits), abs=1e-12), k
    assert 0 < len(hits) <= report["requests"]


def _strict_json(path):
    def refuse(token):
        raise AssertionError(f"{path} holds the bare token {token}, which is not JSON")

    with open(path, encoding="utf-8") as f:
        return json.load(f, parse_constant=refuse)


def test_cli_listwise_batch_default_and_what_the_user_reads(hybrid_data, tmp_path, capsys):
    from tfrec.cli import main
    from tfrec.train_preranking import LOSS_NOTE

    # data.batch_size / eval_batch_size unset: a request-sized batch (64 requests), not the 4096 rows of the
    # point-wise default, which is more than this train split's 84 requests.
    model_dir = str(tmp_path / "model")
    sets = [a for kv in TINY if not kv.startswith(("data.batch_size", "data.eval_batch_size"))
            for a in ("--set", kv)]
    assert main(["train", "--data", hybrid_data, "--model-dir", model_dir, *sets]) == 0
    out = capsys.readouterr().out
    summary = _strict_json(os.path.join(model_dir, "train_summary.json"))["summary"]
    assert summary["global_batch_size"] == 64 and summary["train_steps"] == 1
    assert load_config(os.path.join(model_dir, "config.yaml")).data.batch_size == 64
    # The rate counts lists (requests), and the loss vs val_loss note is printed where the losses are.
    last = out.strip().splitlines()[-1]
    assert last.startswith("trained 1 epoch(s)") and " lists/s; " in last and "examples/s" not in out
    assert LOSS_NOTE.format(train=40, eval=112) in out and "val_loss" in out

    assert main(["evaluate", "--data", hybrid_data, "--model-dir", model_dir, "--split", "valid", *sets]) == 0
    printed = capsys.readouterr().out
    report = _strict_json(os.path.join(model_dir, "preranking_metrics.json"))["valid"]
    for key in ("octile_ISH@20", "octile_ISPH@20"):  # the octiles it writes, printed: n/a where it wrote null
        row = [line for line in printed.splitlines() if line.strip().startswith(f"{key} by octile 1-8")]
        assert len(row) == 1, printed
        shown = row[0].split()[-8:]
        assert shown == ["n/a" if v is None else f"{v:.4f}" for v in report[key]]
    assert None in report["octile_ISPH@20"]  # an octile without purchases: null, not NaN


def test_check_data_rejects_a_pointwise_dataset(tmp_path):
    from tfrec.families import get

    with open(tmp_path / "schema.json", "w") as f:
        json.dump({"name": "criteo"}, f)
    with pytest.raises(DatasetError, match="is a pointwise dataset .*not a preranking one"):
        get(registry.get("hccp").family).check_dataset(str(tmp_path))


def test_settings_are_the_papers_rows():
    settings = registry.get("hccp").settings(Options(quick=True))
    assert [s.params["method"] for s in settings] == ["Base", "Base+ListNet", "Base+ListMLE", "HCCP(w/o Up)",
                                                      "HCCP(w/o PRC)", "HCCP(w/o Neg)", "HCCP(w/o Margin)", "HCCP"]
    assert all(s.baseline == "base" for s in settings[1:]) and settings[0].baseline is None
    for s in settings:
        assert load_config(None, list(s.overrides)).model.variant == s.name


def test_report_statistics_against_numpy(tmp_path):
    rng = np.random.default_rng(0)
    settings = registry.get("hccp").settings(Options())
    results, values = {}, {}
    for s in settings:
        for seed in (1, 2, 3):
            v = rng.random(3)
            values[(s.name, seed)] = v
            results[Cell("hccp", s.name, seed)] = {"run": {"test": {
                "ISH@5": float(v[0]), "NDCG@5": float(v[1]), "AUC_click": float("nan") if seed == 3 else float(v[2]),
                "octile_ISH@5": [float(v[0]), None] + [0.0] * 6}}}
    rows = {r["setting"]: r for r in hccp_report.aggregate(settings, results)}
    ish = {s.name: np.array([values[(s.name, seed)][0] for seed in (1, 2, 3)]) for s in settings}
    assert rows["base"]["ISH@5_mean"] == pytest.approx(ish["base"].mean())
    assert rows["base"]["ISH@5_std"] == pytest.approx(ish["base"].std(ddof=1))
    assert "ISH@5_diff" not in rows["base"]
    d = ish["wo_neg"] - ish["base"]
    t = d.mean() / (d.std(ddof=1) / math.sqrt(3))
    assert rows["wo_neg"]["ISH@5_diff"] == pytest.approx(d.mean())
    assert rows["wo_neg"]["ISH@5_t"] == pytest.approx(t)
    assert rows["wo_neg"]["ISH@5_vs_hccp_diff"] == pytest.approx((ish["wo_neg"] - ish["hccp"]).mean())
    assert "ISH@5_vs_hccp_diff" not in rows["base_listmle"]  # only the w/o rows are ablations of HCCP
    assert rows["hccp"]["AUC_click_n"] == 2  # NaN (no positives) is left out, not averaged in
    assert rows["hccp"]["octile_ISH@5[0]_mean"] == pytest.approx(ish["hccp"].mean())
    assert rows["hccp"]["octile_ISH@5[1]_n"] == 0
    files = hccp_report.build_hccp_report(registry.get("hccp"), settings, results, str(tmp_path), Options())
    assert [os.path.basename(f) for f in files] == ["results.csv", "results.md", "octiles.png"]
    md = open(files[1], encoding="utf-8").read()
    assert f"{100 * d.mean():+.2f}" in md and "ablations, Δ vs HCCP" in md


def test_experiment_all_skips_protocols_of_another_kind_of_dataset(hybrid_data, capsys):
    import argparse

    from tfrec.cli.experiment import experiment_data
    from tfrec.experiments import get

    cfg = load_config(None, [])
    args = argparse.Namespace(protocol="all", quick=False, out="unused", config=None, overrides=[])
    for other in ("sparsity", "pwiser"):
        assert experiment_data(args, get(other), cfg, hybrid_data) is None
        assert f"{other}: skipped" in capsys.readouterr().out
    assert experiment_data(args, get("hccp"), cfg, hybrid_data) == hybrid_data
    args.protocol = "sparsity"  # a protocol named explicitly is never skipped: its own check reports the problem
    assert experiment_data(args, get("sparsity"), cfg, hybrid_data) == hybrid_data
