"""Calibration bias per pCTR bucket of equal positive frequency (KDD 2024 Fig. 8): NumPy oracle, boundary rule,
edge cases, and the `tfrec calibration` command on a briefly trained model."""

import csv
import math

import numpy as np
import pytest

from tfrec.cli import main
from tfrec.metrics.calibration import COLUMNS, bucket_ids, calibration_by_bucket, overall_bias


def _oracle(y, p, w, k):
    """Independent reading of the rule for equal positive weights and distinct p: walk the samples in increasing
    p; the j-th positive (1-based, of P) opens bucket ceil(k j / P) - 1 (integer arithmetic), each negative joins
    the last positive's bucket (the leading ones the first positive's); empty buckets vanish."""
    order = np.argsort(p)
    n_pos = int(y.sum())
    assign = {}
    j, current, pending = 0, None, []
    for i in order:
        if y[i] == 1:
            j += 1
            current = (k * j + n_pos - 1) // n_pos - 1
            for q in pending:
                assign[q] = current
            pending = []
        if current is None:
            pending.append(i)
        else:
            assign[i] = current
    labels = sorted(set(assign.values()))
    rows = []
    for b, lab in enumerate(labels):
        idx = np.array([i for i in assign if assign[i] == lab])
        sw, swy, swp = w[idx].sum(), (w[idx] * y[idx]).sum(), (w[idx] * p[idx]).sum()
        rows.append({"bucket": b, "count": idx.size, "positives": int(y[idx].sum()), "mean_p": swp / sw,
                     "observed_rate": swy / sw, "bias": (swp - swy) / swy, "weight": sw, "positive_weight": swy})
    return rows


@pytest.mark.parametrize("n, rate, k, beta", [(5000, 0.03, 45, 1.0), (3000, 0.2, 45, 0.1), (997, 0.05, 7, 0.5)])
def test_matches_oracle(n, rate, k, beta):
    rng = np.random.default_rng(n)
    logit = rng.normal(-3, 1.5, n)
    p = 1 / (1 + np.exp(-logit))
    y = (rng.random(n) < np.clip(p * rate / p.mean(), 0, 1)).astype(float)
    w = np.where(y == 1, beta, 1.0)  # the pipeline's weight feature: beta_pos on positives
    got = calibration_by_bucket(y, p, w, k)
    want = _oracle(y, p, w, k)
    assert len(got) == len(want) == min(k, int(y.sum()))
    for g, o in zip(got, want):
        assert set(g) == set(COLUMNS)
        for key in o:
            assert g[key] == pytest.approx(o[key], rel=1e-12, abs=1e-15), key
    counts = [r["positives"] for r in got]
    assert max(counts) - min(counts) <= 1 and sum(counts) == int(y.sum())  # equal positive frequency
    assert sum(r["count"] for r in got) == n
    assert all(a["p_max"] < b["p_min"] for a, b in zip(got, got[1:]))  # contiguous ranges of p
    # The bias is the relative error of the predicted clicks: mean_p / observed_rate - 1.
    assert all(r["bias"] == pytest.approx(r["mean_p"] / r["observed_rate"] - 1, rel=1e-9, abs=1e-12) for r in got)
    total = overall_bias(y, p, w)
    assert total == pytest.approx(np.sum(w * (p - y)) / np.sum(w * y), rel=1e-12)


def test_exact_boundaries_small_example():
    # 6 positives, 3 buckets: 2 positives each; negatives follow the previous positive (leading ones the first).
    p = np.arange(12) / 20.0
    y = np.array([0, 1, 0, 1, 1, 0, 0, 1, 0, 1, 1, 0], float)
    ids = bucket_ids(y, p, num_buckets=3)
    assert ids.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2]
    rows = calibration_by_bucket(y, p, num_buckets=3)
    b1 = slice(4, 9)
    assert rows[1]["bias"] == pytest.approx((p[b1].sum() - y[b1].sum()) / y[b1].sum())
    assert rows[1]["observed_rate"] == pytest.approx(2 / 5) and rows[1]["count"] == 5
    # The input order does not matter.
    perm = np.random.default_rng(0).permutation(12)
    assert bucket_ids(y[perm], p[perm], num_buckets=3).tolist() == ids[perm].tolist()


def test_ties_fewer_positives_and_heavy_weights():
    # Fewer positives than buckets: one bucket per positive.
    p = np.linspace(0.01, 0.5, 50)
    y = np.zeros(50)
    y[[5, 20, 40]] = 1
    rows = calibration_by_bucket(y, p, num_buckets=45)
    assert len(rows) == 3 and [r["positives"] for r in rows] == [1, 1, 1]
    assert [r["count"] for r in rows] == [20, 20, 10]
    # Tied predictions are never split: a run of ties goes to the bucket of its last sample.
    p = np.array([0.1, 0.2, 0.2, 0.2, 0.2, 0.3, 0.4])
    y = np.array([1, 1, 0, 1, 1, 0, 1], float)
    ids = bucket_ids(y, p, num_buckets=5)
    assert ids.tolist() == [0, 1, 1, 1, 1, 1, 2]
    # Heterogeneous weights: every bucket still holds positive weight (a finite bias) and p ranges do not overlap.
    rng = np.random.default_rng(3)
    for _ in range(20):
        n = int(rng.integers(5, 200))
        p = np.round(rng.random(n), 2)  # many ties
        y = (rng.random(n) < 0.3).astype(float)
        y[0] = 1
        w = rng.exponential(1.0, n) * (rng.random(n) < 0.9)
        w[0] = 1.0
        rows = calibration_by_bucket(y, p, w, int(rng.integers(1, 30)))
        assert all(r["positive_weight"] > 0 and math.isfinite(r["bias"]) for r in rows)
        assert all(a["p_max"] < b["p_min"] for a, b in zip(rows, rows[1:]))
        assert sum(r["count"] for r in rows) == n


def test_errors():
    with pytest.raises(ValueError, match="no positive"):
        calibration_by_bucket([0, 0, 0], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="no positive"):
        calibration_by_bucket([1, 0], [0.1, 0.2], weights=[0.0, 1.0])
    with pytest.raises(ValueError, match="num_buckets"):
        calibration_by_bucket([1, 0], [0.1, 0.2], num_buckets=0)
    with pytest.raises(ValueError, match="same length"):
        calibration_by_bucket([1, 0], [0.1])
    with pytest.raises(ValueError, match="0 or 1"):
        calibration_by_bucket([2, 0], [0.1, 0.2])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        calibration_by_bucket([1, 0], [0.1, float("nan")])
    with pytest.raises(ValueError, match="at least one sample"):
        calibration_by_bucket([], [])
    one = calibration_by_bucket([1], [0.25], num_buckets=45)
    assert len(one) == 1 and one[0]["bias"] == pytest.approx(-0.75)


def test_cli_calibration_after_short_training(tiny_dataset, tmp_path, capsys):
    model_dir = str(tmp_path / "m")
    common = ["--data", tiny_dataset, "--model-dir", model_dir, "--set", "model.dnn_hidden_units=[16]",
              "--set", "data.batch_size=64", "--set", "data.eval_batch_size=64", "--set", "data.shuffle_buffer=0"]
    # Before training: a one-line usage error.
    assert main(["calibration", *common]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("tfrec calibration: error:") and "no trained weights" in err
    assert main(["train", *common, "--epochs", "1", "--set", "train.steps_per_epoch=3",
                 "--set", "train.log_every_seconds=0"]) == 0
    capsys.readouterr()
    out_csv = str(tmp_path / "cal" / "test.csv")
    assert main(["calibration", *common, "--split", "test", "--buckets", "5", "--output", out_csv]) == 0
    out = capsys.readouterr().out
    assert "mean pCTR" in out and "observed CTR" in out and "overall bias" in out and out_csv in out
    with open(out_csv) as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(COLUMNS) and len(rows) == 5
    from tfrec.config import load_config
    from tfrec.evaluate import predict_split
    from tfrec.train import load_trained_model

    cfg = load_config(None, [f"data.dir={tiny_dataset}", f"train.model_dir={model_dir}",
                             "model.dnn_hidden_units=[16]"])
    p, y, w = predict_split(load_trained_model(cfg), tiny_dataset, "test", 64)
    want = calibration_by_bucket(y, p, w, 5)
    for got, exp in zip(rows, want):
        assert int(got["count"]) == exp["count"] and float(got["bias"]) == pytest.approx(exp["bias"], rel=1e-6)
    assert sum(int(r["count"]) for r in rows) == 128
    # Unweighted, default output path, more buckets than positives: fewer buckets, stated.
    assert main(["calibration", *common, "--buckets", "500", "--unweighted"]) == 0
    out = capsys.readouterr().out
    assert "bucket(s) instead of 500" in out
    assert (tmp_path / "m" / "calibration_test.csv").exists()
    assert main(["calibration", *common, "--buckets", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--buckets must be >= 1" in err
