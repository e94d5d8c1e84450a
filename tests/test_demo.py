"""`tfrec demo` end to end on a small simulated dataset: every stage runs and the table reports the run."""

import json
import os

from tfrec.cli import main


def test_demo_end_to_end_small(tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(["demo", "--out", str(out), "--rows", "8000", "--epochs", "2", "--set", "train.learning_rate=0.01",
                 "--set", "model.dnn_hidden_units=[32, 16]", "--set", "data.batch_size=256",
                 "--set", "data.eval_batch_size=1024", "--set", "prepare.min_count=2"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    for stage in ("[1/4]", "[2/4]", "[3/4]", "[4/4]"):
        assert stage in printed
    summary = json.loads((out / "demo_summary.json").read_text())
    stats, report = summary["stats"], summary["report"]
    # rows in = rows written + rejected, and the table's numbers are the run's
    assert stats["rows_in"] == 8000 == sum(stats["rows_written"].values()) + stats["rows_rejected"]
    assert report["rows"] == stats["rows_written"]["test"]
    assert f"{report['auc']:.5f}" in printed and f"{report['weighted_logloss']:.5f}" in printed
    p = report["positive_rate"]
    assert abs(report["effective_positive_rate"] - 0.5 * p / (0.5 * p + 1 - p)) < 1e-9
    assert report["auc"] > 0.55  # it learned something
    assert summary["train"]["replicas"] == 2
    for path in ("raw/train.txt", "raw/train.txt.truth", "data/stats.json", "model/metrics.json"):
        assert os.path.exists(out / path), path
