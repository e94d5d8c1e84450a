"""Units of `tfrec experiment` without training: statistics, a registered protocol with its own cell runner
(tables over several seeds against SciPy), the reader's beta_pos re-weighting and negative sampling, the CLI."""

import csv
import math
import os

import numpy as np
import pytest
from scipy import stats as sps

from tfrec import data as data_lib
from tfrec.cli import main
from tfrec.config import load_config
from tfrec.experiments import Options, Protocol, Setting, register, run_protocol
from tfrec.experiments.core import stats
from tfrec.features import CRITEO


def test_summarize_and_paired_test_hand_values():
    s = stats.summarize([1.0, 2.0, 4.0])
    assert s["n"] == 3 and s["mean"] == pytest.approx(7 / 3) and s["std"] == pytest.approx(np.std([1, 2, 4], ddof=1))
    one = stats.summarize([0.5, None, float("nan")])
    assert one["n"] == 1 and one["mean"] == 0.5 and math.isnan(one["std"])
    # d = [1, 2, 2]: mean 5/3, std sqrt(1/3), t = 5; two-sided p with 2 df: 2 (1 - (1/2 + t / (2 sqrt(2 + t^2)))).
    r = stats.paired_test({1: 1.0, 2: 2.0, 3: 3.0, 9: 7.0}, {1: 0.0, 2: 0.0, 3: 1.0})
    assert r["n"] == 3 and r["mean_diff"] == pytest.approx(5 / 3) and r["std_diff"] == pytest.approx(math.sqrt(1 / 3))
    assert r["t"] == pytest.approx(5.0)
    assert r["p"] == pytest.approx(2 * (0.5 - 5 / (2 * math.sqrt(27))))
    ref = sps.ttest_rel([1.0, 2.0, 3.0], [0.0, 0.0, 1.0])
    assert r["p"] == pytest.approx(ref.pvalue) and r["t"] == pytest.approx(ref.statistic)


def test_paired_test_edge_cases():
    single = stats.paired_test({1: 1.0}, {1: 0.0})
    assert single["n"] == 1 and single["mean_diff"] == 1.0 and math.isnan(single["p"]) and math.isnan(single["t"])
    same = stats.paired_test({1: 1.0, 2: 2.0}, {1: 1.0, 2: 2.0})
    assert same["mean_diff"] == 0.0 and math.isnan(same["p"])
    shift = stats.paired_test({1: 1.0, 2: 2.0}, {1: 0.5, 2: 1.5})  # constant nonzero difference: SciPy's limit
    assert shift["mean_diff"] == 0.5 and shift["p"] == pytest.approx(0.0)
    none = stats.paired_test({}, {})
    assert none["n"] == 0 and math.isnan(none["mean_diff"])


def test_ratios_follow_the_paper():
    # Fig. 4 at beta_pos 0.1: AUC 0.8132 -> 0.8140, BCE 0.1215 -> 0.1213.
    assert stats.ratio(0.8140, 0.8132, "lift") == pytest.approx(0.8140 / 0.8132 - 1)
    assert stats.ratio(0.1213, 0.1215, "drop") == pytest.approx(1 - 0.1213 / 0.1215)
    assert math.isnan(stats.ratio(1.0, 0.0, "lift"))
    with pytest.raises(ValueError, match="kind"):
        stats.ratio(1.0, 1.0, "up")


def _fake_run(cfg, run_dir, printer, buckets=45):
    """A cell runner that trains nothing: metrics are a function of the loss and the seed."""
    _fake_run.calls += 1
    seed = cfg.train.seed
    bump = 0.01 if cfg.model.loss.name == "combined_pair" else 0.0
    os.makedirs(run_dir, exist_ok=True)
    return {"test": {"auc": 0.7 + bump + 0.001 * (seed % 7) ** 2, "weighted_logloss": 0.2 - bump / 2 + 0.0001 * seed},
            "train": {"epochs_run": 1}, "calibration": []}


_fake_run.calls = 0
register(Protocol("test-fake", "a protocol with its own cell runner", lambda opts: [
    Setting("bce", {"method": "BCE", "x": 1.0}, ("model.loss.name=weighted_bce", "model.loss.params={}")),
    Setting("cp", {"method": "Combined-Pair", "x": 2.0}, ("model.loss.name=combined_pair", "model.loss.params={}"),
            baseline="bce")], x="x", run_cell=_fake_run))


def test_registered_protocol_tables_match_scipy(tiny_dataset, tmp_path):
    seeds = [2020, 2021, 2022, 2023]
    base = load_config(None, [])
    summary = run_protocol("test-fake", tiny_dataset, seeds, str(tmp_path), base, printer=lambda _: None)
    assert summary["computed"] == 8 and _fake_run.calls == 8
    with open(tmp_path / "test-fake" / "results.csv", newline="") as f:
        rows = {r["setting"]: r for r in csv.DictReader(f)}
    auc = {s: np.array([0.7 + b + 0.001 * (x % 7) ** 2 for x in seeds]) for s, b in (("bce", 0.0), ("cp", 0.01))}
    assert float(rows["cp"]["auc_mean"]) == pytest.approx(auc["cp"].mean())
    assert float(rows["cp"]["auc_std"]) == pytest.approx(auc["cp"].std(ddof=1))
    assert float(rows["cp"]["auc_diff"]) == pytest.approx(0.01)
    ll = {s: np.array([0.2 - b + 0.0001 * x for x in seeds]) for s, b in (("bce", 0.0), ("cp", 0.005))}
    ref = sps.ttest_rel(ll["cp"], ll["bce"])
    assert float(rows["cp"]["logloss_t"]) == pytest.approx(ref.statistic, rel=1e-6)
    assert float(rows["cp"]["logloss_ratio"]) == pytest.approx(1 - ll["cp"].mean() / ll["bce"].mean())
    assert float(rows["cp"]["auc_ratio"]) == pytest.approx(auc["cp"].mean() / auc["bce"].mean() - 1)
    assert rows["bce"]["auc_diff"] == ""
    assert os.path.exists(tmp_path / "test-fake" / "metrics.png")
    again = run_protocol("test-fake", tiny_dataset, seeds, str(tmp_path), base, printer=lambda _: None)
    assert again["computed"] == 0 and again["skipped"] == 8 and _fake_run.calls == 8


def test_reader_reweights_and_samples_negatives(tiny_dataset):
    files = data_lib.split_files(tiny_dataset, "train")

    def collect(**kw):
        ys, ws = [], []
        for _, y, w in data_lib.make_dataset(files, CRITEO, 100, training=False, seed=3, **kw):
            ys.append(y.numpy())
            ws.append(w.numpy())
        return np.concatenate(ys), np.concatenate(ws)

    y, w = collect()
    np.testing.assert_allclose(w, np.where(y == 1, 0.5, 1.0))  # the prepared weights
    y, w = collect(beta_pos=0.2)
    np.testing.assert_allclose(w, np.where(y == 1, 0.2, 1.0))
    ys, _ = collect(negative_keep_ratio=0.5)
    again, _ = collect(negative_keep_ratio=0.5)
    np.testing.assert_array_equal(ys, again)  # the same records every time for a seed
    assert (ys == 1).sum() == (y == 1).sum()  # every positive kept
    kept = (ys == 0).sum() / (y == 0).sum()
    assert 0.35 < kept < 0.65
    with pytest.raises(ValueError, match="negative_keep_ratio"):
        data_lib.make_dataset(files, CRITEO, 100, training=False, negative_keep_ratio=0.0)


def test_config_keys_are_validated():
    cfg = load_config(None, ["data.beta_pos=0.1", "data.negative_keep_ratio=0.5"])
    assert cfg.data.beta_pos == 0.1 and cfg.data.negative_keep_ratio == 0.5
    assert load_config(None, []).data.beta_pos is None
    from tfrec.config import ConfigError

    with pytest.raises(ConfigError, match="data.beta_pos"):
        load_config(None, ["data.beta_pos=0"])
    with pytest.raises(ConfigError, match="data.negative_keep_ratio"):
        load_config(None, ["data.negative_keep_ratio=1.5"])


def test_cli_errors(capsys, tmp_path):
    assert main(["experiment", "sparsity", "--out", str(tmp_path)]) == 2
    assert "no dataset given" in capsys.readouterr().err
    assert main(["experiment", "sparsity", "--out", str(tmp_path), "--data", str(tmp_path / "nope")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["experiment", "sparsity", "--out", str(tmp_path), "--seeds", "0", "--quick"]) == 2
    assert "--seeds" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["experiment", "nope", "--out", str(tmp_path)])
