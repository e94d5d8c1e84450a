"""Exact weighted AUC and logloss against scikit-learn and a brute-force pairwise oracle."""

import numpy as np
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from tfrec.metrics import auc, binary_report, logloss


def _pairwise_auc(y, s, w):
    num = den = 0.0
    for i in np.flatnonzero(y == 1):
        for j in np.flatnonzero(y == 0):
            pw = w[i] * w[j]
            den += pw
            num += pw * (1.0 if s[i] > s[j] else 0.5 if s[i] == s[j] else 0.0)
    return num / den


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_matches_sklearn_and_pairwise_oracle(seed):
    rng = np.random.default_rng(seed)
    n = 300
    y = (rng.random(n) < 0.3).astype(float)
    s = np.round(rng.random(n) + 0.3 * y, 2)  # rounding creates ties
    w = rng.uniform(0.1, 2.0, n)
    assert auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert auc(y, s, w) == pytest.approx(roc_auc_score(y, s, sample_weight=w), abs=1e-12)
    assert auc(y, s, w) == pytest.approx(_pairwise_auc(y, s, w), abs=1e-12)


def test_weighted_auc_equals_auc_when_weights_are_per_class():
    # beta_pos weights (beta on every positive, 1 on every negative) scale every pair alike.
    rng = np.random.default_rng(3)
    y = (rng.random(500) < 0.25).astype(float)
    s = rng.random(500) + 0.2 * y
    w = np.where(y == 1, 0.1, 1.0)
    assert auc(y, s, w) == pytest.approx(auc(y, s), abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_logloss_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = (rng.random(200) < 0.4).astype(float)
    p = rng.uniform(0.01, 0.99, 200)
    w = np.where(y == 1, 0.2, 1.0)
    assert logloss(y, p) == pytest.approx(log_loss(y, p), abs=1e-10)
    assert logloss(y, p, w) == pytest.approx(log_loss(y, p, sample_weight=w), abs=1e-10)


def test_edge_cases():
    assert np.isnan(auc([1, 1], [0.2, 0.3]))  # no negatives
    assert np.isnan(auc([0, 0], [0.2, 0.3]))  # no positives
    assert auc([1, 0], [0.5, 0.5]) == 0.5  # a tie
    assert logloss([1, 0], [0.0, 1.0]) == pytest.approx(7 * np.log(10))  # clipped to [1e-7, 1 - 1e-7], no inf
    with pytest.raises(ValueError, match="same length"):
        auc([1, 0], [0.5])
    with pytest.raises(ValueError, match="0 or 1"):
        auc([2, 0], [0.5, 0.1])


def test_binary_report_effective_positive_rate():
    y = np.array([1, 0, 0, 0], dtype=float)
    w = np.array([0.5, 1, 1, 1])
    r = binary_report(y, np.array([0.6, 0.2, 0.3, 0.1]), w)
    assert r["positive_rate"] == 0.25
    # beta p / (beta p + 1 - p) with beta 0.5, p 0.25
    assert r["effective_positive_rate"] == pytest.approx(0.5 * 0.25 / (0.5 * 0.25 + 0.75))
    assert r["auc"] == 1.0 and r["rows"] == 4
