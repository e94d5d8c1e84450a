"""Exact binary-classification metrics in NumPy: AUC and logloss, unweighted and weighted.

Weighted metrics treat a sample of weight ``w`` as ``w`` copies of itself, which is how the KDD 2024 paper
evaluates its artificial sparse datasets (positives down-weighted by beta_pos):

* weighted AUC: the probability that a positive ranks above a negative when pairs are drawn with probability
  proportional to ``w_i * w_j`` (ties count 1/2):
  ``AUC_w = sum_{i in P, j in N} w_i w_j [1(s_i > s_j) + 0.5 * 1(s_i = s_j)] / (sum_P w_i * sum_N w_j)``.
* weighted logloss: ``-sum_i w_i [y_i log p_i + (1 - y_i) log(1 - p_i)] / sum_i w_i``.

Both are computed in O(n log n) by sorting the scores.
"""

from __future__ import annotations

from typing import Dict, Optional

import numpy as np


def prepare_binary(labels, scores, weights):
    """``(y, s, w)`` as float64 vectors, checked: equal lengths, labels in {0, 1}, weights >= 0 (ones if None)."""
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    w = np.ones_like(y) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    if not (y.shape == s.shape == w.shape):
        raise ValueError(f"labels, scores and weights must have the same length. Received: {y.shape[0]}, "
                         f"{s.shape[0]}, {w.shape[0]}")
    if np.any((y != 0) & (y != 1)):
        raise ValueError("labels must be 0 or 1")
    if np.any(w < 0):
        raise ValueError("weights must be >= 0")
    return y, s, w


def auc(labels, scores, weights: Optional[np.ndarray] = None) -> float:
    """Exact (weighted) ROC AUC; NaN when one class has zero total weight."""
    y, s, w = prepare_binary(labels, scores, weights)
    wp, wn = w * y, w * (1.0 - y)
    if wp.sum() <= 0 or wn.sum() <= 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    s, wp, wn = s[order], wp[order], wn[order]
    # Group ties: per distinct score, positive and negative weight.
    boundaries = np.flatnonzero(np.diff(s)) + 1
    pos = np.add.reduceat(wp, np.r_[0, boundaries])
    neg = np.add.reduceat(wn, np.r_[0, boundaries])
    neg_below = np.cumsum(neg) - neg
    total = np.sum(pos * (neg_below + 0.5 * neg))
    return float(total / (wp.sum() * wn.sum()))


def logloss(labels, probabilities, weights: Optional[np.ndarray] = None, eps: float = 1e-7) -> float:
    """(Weighted) mean binary cross-entropy of probabilities clipped to [eps, 1 - eps]."""
    y, p, w = prepare_binary(labels, probabilities, weights)
    if w.sum() <= 0:
        return float("nan")
    p = np.clip(p, eps, 1.0 - eps)
    ll = -(y * np.log(p) + (1.0 - y) * np.log(1.0 - p))
    return float(np.sum(w * ll) / np.sum(w))


def binary_report(labels, probabilities, weights=None) -> Dict[str, float]:
    """AUC and logloss, unweighted and weighted, with counts and rates."""
    y, p, w = prepare_binary(labels, probabilities, weights)
    return {
        "auc": auc(y, p),
        "logloss": logloss(y, p),
        "weighted_auc": auc(y, p, w),
        "weighted_logloss": logloss(y, p, w),
        "rows": int(y.size),
        "positive_rate": float(y.mean()) if y.size else float("nan"),
        "effective_positive_rate": float(np.sum(w * y) / np.sum(w)) if y.size else float("nan"),
        "mean_prediction": float(np.mean(p)) if y.size else float("nan"),
    }
