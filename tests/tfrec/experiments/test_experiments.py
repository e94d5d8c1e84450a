"""`tfrec experiment`: every protocol end to end on a tiny dataset (one seed, one epoch, two settings), the files
it writes, table numbers equal to the cells' metrics, resumability, and the findings report."""

import csv
import json
import math
import os

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import log_loss, roc_auc_score

from tfrec import data as data_lib

from tfrec.config import load_config
from tfrec.experiments import Options, run_protocol
from tfrec.experiments.core import registry
from tfrec.experiments.core.store import Cell, Store
from tfrec.train import load_trained_model

SEED = 2020
# Two settings per protocol (the findings need their three); tiny model, one epoch.
SETTINGS = {
    "sparsity": ["bce_beta0.1", "combined_pair_beta0.1"],
    "alpha": ["bce", "alpha0.7"],
    "losses": ["bce", "combined_pair"],
    "focal": ["bce", "focal_gamma2"],
    "negative-sampling": ["keep1", "keep0.5"],
    "contrastive": ["bce", "combined_contrastive"],
    "findings": ["bce", "combined_pair", "bce_dense"],
}
# The pairing of each setting with the setting it is compared with (None: not compared), as the protocols define it.
BASELINES = {
    "sparsity": {"bce_beta0.1": None, "combined_pair_beta0.1": "bce_beta0.1"},
    "alpha": {"bce": None, "alpha0.7": "bce"},
    "losses": {"bce": None, "combined_pair": "bce"},
    "focal": {"bce": None, "focal_gamma2": "bce"},
    "negative-sampling": {"keep1": None, "keep0.5": "keep1"},
    "contrastive": {"bce": None, "combined_contrastive": "bce"},
    "findings": {"bce": None, "combined_pair": "bce", "bce_dense": None},
}
PLOTS = ("metrics.png", "lift.png", "grad_neg_epoch1.png", "grad_boxplot.png", "train_bce.png",
         "calibration_bias.png")


@pytest.fixture(scope="module")
def base_cfg():
    return load_config(None, ["model.dnn_hidden_units=[16, 8]", "model.num_cross_layers=1", "model.embedding_dim=4",
                              "data.batch_size=64", "data.eval_batch_size=128", "data.shuffle_buffer=0",
                              "train.epochs=1", "train.replicas=1", "train.log_every_seconds=0",
                              "train.save_every_steps=0"])


@pytest.fixture(scope="module")
def experiment(tiny_dataset, base_cfg, tmp_path_factory):
    """Runs every protocol once into one output directory; returns (out dir, {protocol: summary})."""
    out = str(tmp_path_factory.mktemp("experiment"))
    summaries = {}
    for name in registry.names():
        if name in SETTINGS:
            summaries[name] = run_protocol(name, tiny_dataset, [SEED], out, base_cfg, Options(buckets=4),
                                           only=SETTINGS[name], printer=lambda _: None)
    return out, summaries


def _csv_rows(path):
    with open(path, newline="") as f:
        return {r["setting"]: r for r in csv.DictReader(f)}


def _scores(cell, split):
    """``(p, y, w)`` of ``split``: the run's best weights scoring the split read here, with Eq. 15's weights
    (the cell's beta_pos on positives, 1 on negatives)."""
    cfg = load_config(os.path.join(cell["run_dir"], "config.yaml"))
    model = load_trained_model(cfg)
    ps, ys = [], []
    for features, y, _ in data_lib.make_dataset(data_lib.split_files(cfg.data.dir, split),
                                                data_lib.load_schema(cfg.data.dir), 128, training=False):
        ps.append(model(features, training=False)["probability"].numpy())
        ys.append(y.numpy())
    p, y = np.concatenate(ps).astype(np.float64), np.concatenate(ys).astype(np.float64)
    return p, y, np.where(y == 1, cfg.data.beta_pos, 1.0)


def _check_test_metrics_by_hand(cell):
    """The run's test AUC and weighted logloss, recomputed with scikit-learn from :func:`_scores`."""
    p, y, w = _scores(cell, "test")
    assert cell["run"]["test"]["rows"] == len(y) == 128
    assert cell["run"]["test"]["auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-6), cell["setting"]
    assert cell["run"]["test"]["weighted_logloss"] == pytest.approx(log_loss(y, p, sample_weight=w), rel=1e-5)


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_protocol_end_to_end(experiment, name):
    out, summaries = experiment
    protocol = registry.get(name)
    report = os.path.join(out, name)
    for f in ("results.csv", "results.md", "run_record.json", *PLOTS):
        assert os.path.getsize(os.path.join(report, f)) > 0, f
    assert summaries[name]["cells"] == len(SETTINGS[name])
    rows = _csv_rows(os.path.join(report, "results.csv"))
    assert list(rows) == SETTINGS[name]
    store = Store(out)
    md = open(os.path.join(report, "results.md")).read()
    paired = 0
    for setting in SETTINGS[name]:
        cell = store.cell_result(Cell(name, setting, SEED))
        assert cell["status"] in ("computed", "reused")
        run = cell["run"]
        assert run["train"]["epochs_run"] == 1
        for key in protocol.metric_keys:
            value = registry.metric_value(run, protocol.metric(key))
            assert value is not None and math.isfinite(value), (setting, key)
            assert float(rows[setting][f"{key}_mean"]) == value  # one seed: the mean is the run's number
            assert rows[setting][f"{key}_std"] == ""  # undefined with one seed, never 0
            assert f"{value:.5f}" in md or f"{value:.2e}" in md
        assert cell["baseline"] == BASELINES[name][setting]
        if cell["baseline"] is not None:
            paired += 1
            base = store.cell_result(Cell(name, cell["baseline"], SEED))["run"]
            for key in protocol.metric_keys:
                m = protocol.metric(key)
                diff = registry.metric_value(run, m) - registry.metric_value(base, m)
                assert float(rows[setting][f"{key}_diff"]) == pytest.approx(diff, rel=1e-12, abs=1e-15)
                assert rows[setting][f"{key}_p"] == ""  # no test with one seed
        _check_test_metrics_by_hand(cell)
    assert paired == sum(b is not None for b in BASELINES[name].values()) > 0
    record = json.load(open(os.path.join(report, "run_record.json")))
    assert record["seeds"] == [SEED] and record["data_stats"]["rows_written"]["train"] == 512
    assert record["versions"]["tensorflow"] and record["wall_seconds"] > 0
    assert record["base_config"]["model"]["dnn_hidden_units"] == [16, 8]


def test_cells_apply_their_settings(experiment):
    out, _ = experiment
    store = Store(out)
    sparse = store.cell_result(Cell("findings", "bce", SEED))["run"]
    dense = store.cell_result(Cell("findings", "bce_dense", SEED))["run"]
    # The reader re-weights positives by the cell's beta_pos (the tiny dataset was written with 0.5).
    rate = dense["test"]["positive_rate"]
    assert dense["test"]["effective_positive_rate"] == pytest.approx(rate)
    assert sparse["test"]["effective_positive_rate"] == pytest.approx(0.1 * rate / (0.1 * rate + 1 - rate))
    assert sparse["config"]["data"]["beta_pos"] == 0.1 and dense["config"]["data"]["beta_pos"] == 1.0
    jrc = registry.get("losses").settings(Options())[2]
    assert jrc.name == "jrc" and "model.head=jrc" in jrc.overrides and "model.loss.params.pairing=global" in jrc.overrides
    kept = store.cell_result(Cell("negative-sampling", "keep0.5", SEED))["run"]
    full = store.cell_result(Cell("negative-sampling", "keep1", SEED))["run"]
    assert kept["train"]["train_steps"] < full["train"]["train_steps"]  # fewer negatives, fewer steps
    # After isotonic calibration (fitted on valid with the weights, clipped to its range) on test: AUC and the
    # weighted logloss (probabilities clipped to [1e-7, 1 - 1e-7]).
    kept_cell = store.cell_result(Cell("negative-sampling", "keep0.5", SEED))
    (pv, yv, wv), (pt, yt, wt) = _scores(kept_cell, "valid"), _scores(kept_cell, "test")
    calibrated = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(pv, yv, sample_weight=wv)
    pc = np.clip(calibrated.predict(pt), 1e-7, 1 - 1e-7)
    expected = -np.sum(wt * (yt * np.log(pc) + (1 - yt) * np.log(1 - pc))) / wt.sum()
    assert kept["calibrated"]["weighted_logloss"] == pytest.approx(expected, rel=1e-6)
    assert kept["calibrated"]["auc"] == pytest.approx(roc_auc_score(yt, calibrated.predict(pt)), abs=1e-9)
    # Eq. 15 training BCE of the BCE method equals the loss it optimised (the logged training loss).
    assert sparse["train_bce"]["epoch1"] == pytest.approx(sparse["history"]["loss"][0], rel=1e-4)


def test_shared_runs_are_reused_and_reruns_compute_nothing(experiment, tiny_dataset, base_cfg):
    out, summaries = experiment
    # alpha's and losses' two settings are the BCE and Combined-Pair (alpha 0.7 at beta_pos 0.1) runs of the
    # sparsity protocol.
    for name in ("alpha", "losses"):
        assert summaries[name]["computed"] == 0 and summaries[name]["reused"] == 2
    assert summaries["findings"]["computed"] == 1  # bce_dense; bce and combined_pair were trained before
    again = run_protocol("sparsity", tiny_dataset, [SEED], out, base_cfg, Options(buckets=4),
                         only=SETTINGS["sparsity"], printer=lambda _: None)
    assert again["computed"] == 0 and again["reused"] == 0 and again["skipped"] == 2
    # A lost cell file is rebuilt from its finished run, without training.
    os.remove(Store(out).cell_path(Cell("sparsity", "bce_beta0.1", SEED)))
    again = run_protocol("sparsity", tiny_dataset, [SEED], out, base_cfg, Options(buckets=4),
                         only=SETTINGS["sparsity"], printer=lambda _: None)
    assert again["computed"] == 0 and again["reused"] == 1 and again["skipped"] == 1
    record = json.load(open(os.path.join(out, "sparsity", "run_record.json")))
    assert len(record["previous_runs"]) == 2


def test_findings_report(experiment):
    out, _ = experiment
    findings = json.load(open(os.path.join(out, "findings", "findings.json")))["findings"]
    assert [f["finding"] for f in findings] == [1, 2, 3, 4]
    store = Store(out)
    bce = store.cell_result(Cell("findings", "bce", SEED))["run"]
    cp = store.cell_result(Cell("findings", "combined_pair", SEED))["run"]
    f1 = findings[0]["measured"][0]
    assert f1["mean_diff"] == pytest.approx(cp["valid"]["weighted_logloss"] - bce["valid"]["weighted_logloss"])
    assert findings[0]["holds"] == (f1["mean_diff"] < 0)
    f4 = findings[3]["measured"][0]
    grad = cp["gradients"]["grad_neg_mean_epoch1"] - bce["gradients"]["grad_neg_mean_epoch1"]
    assert f4["mean_diff"] == pytest.approx(grad) and findings[3]["holds"] == (grad > 0)
    md = open(os.path.join(out, "findings", "findings.md")).read()
    assert "| 4 |" in md and ("| yes |" in md or "| no |" in md)


def test_unknown_setting_is_a_clear_error(tiny_dataset, base_cfg, tmp_path):
    with pytest.raises(ValueError, match="has no setting 'nope'"):
        run_protocol("losses", tiny_dataset, [SEED], str(tmp_path), base_cfg, only=["nope"], printer=lambda _: None)
    with pytest.raises(ValueError, match="unknown protocol"):
        registry.get("nope")
