"""`tfrec demo` end to end on a small simulated dataset: every stage runs, the table reports the run, and the
exported model served over gRPC answers as the Keras model does."""

import json
import os

import numpy as np

from tfrec.cli import main


def test_demo_end_to_end_small(tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(["demo", "--out", str(out), "--rows", "8000", "--epochs", "2", "--set", "train.learning_rate=0.01",
                 "--set", "model.dnn_hidden_units=[32, 16]", "--set", "data.batch_size=256",
                 "--set", "data.eval_batch_size=1024", "--set", "prepare.min_count=2"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    for stage in ("[1/6]", "[2/6]", "[3/6]", "[4/6]", "[5/6]", "[6/6]"):
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
    # steps 5 and 6: version 1 of the export, served over gRPC, equal to the in-process model on the same rows
    served = summary["serving"]
    assert served["version"] == 1 and served["export_path"] == str(out / "models" / "ctr" / "1")
    assert os.path.exists(out / "models" / "ctr" / "1" / "saved_model.pb")
    assert os.path.exists(out / "models" / "ctr" / "1" / "assets.extra" / "tf_serving_warmup_requests")
    assert set(served["signatures"]) == {"serving_default", "predict_raw", "classification", "regression"}
    assert served["rows"] == len(served["grpc"]) == len(served["in_process"]) == 5
    np.testing.assert_allclose(served["grpc"], served["in_process"], rtol=0, atol=1e-6)
    assert len(set(round(p, 6) for p in served["grpc"])) > 1  # distinct rows, distinct predictions
    for p_grpc, p_local in zip(served["grpc"], served["in_process"]):
        assert f"{p_grpc:.6f}" in printed and f"{p_local:.6f}" in printed
    assert "server stopped" in printed
