"""Calibration bias per pCTR bucket (KDD 2024, Lin et al., Sec. 5.1 and Fig. 8), exact, in NumPy.

The paper sorts the samples by predicted CTR, "bucketize[s] the samples with equal frequency of positive samples
and plot[s] the bias of corresponding samples within each bucket". Per bucket ``B`` tfrec reports, with sample
weights ``w`` (all 1 when none are given; the ``weight`` feature makes a positive count ``beta_pos`` times):

* ``bias = sum_B w (p - y) / sum_B w y``: the relative error of the predicted clicks against the observed ones
  (the definition of the paper's code); negative = the model under-predicts the bucket's CTR.
* ``mean_p = sum_B w p / sum_B w`` and ``observed_rate = sum_B w y / sum_B w`` (so
  ``bias = mean_p / observed_rate - 1``), ``count`` (samples), ``positives`` (positive samples),
  ``weight`` (``sum_B w``), ``positive_weight`` (``sum_B w y``), ``p_min`` / ``p_max``.

Bucket boundary rule (exact, deterministic):

1. Sort by ``p`` ascending (stable). Let ``C_k`` be the cumulative positive weight ``sum_{i <= k} w_i y_i``
   *including* sample ``k``, and ``P = C_n`` the total.
2. Sample ``k`` goes to bucket ``ceil(K * C_k / P) - 1`` (clipped to ``[0, K - 1]``; ``K * C_k / P`` within a
   relative 1e-9 of an integer counts as that integer, against the rounding of float sums), ``K = num_buckets``:
   bucket ``b`` takes the positives whose cumulative weight lies in ``(b P / K, (b + 1) P / K]``, and each
   negative joins the bucket of the last positive before it. With equal positive weights (unit weights, or
   beta_pos on every positive) every bucket holds ``floor(n_pos / K)`` or ``ceil(n_pos / K)`` positives.
3. Samples with the same ``p`` are never split: a run of ties goes to the bucket of its last sample.
4. The negatives before the first positive join the first positive's bucket (so a bucket always holds positive
   weight and its bias is defined).
5. Empty buckets are dropped and the rest renumbered ``0, 1, ...`` in increasing ``p``.

Edge cases: no positive weight raises ``ValueError`` (the bias is undefined). Fewer positive samples than
``num_buckets`` (or ties / heavy positive weights that empty some buckets) gives fewer buckets than asked for:
at most one bucket per positive sample; the length of the returned list says how many were made.
"""

from __future__ import annotations

import csv
import math
from typing import Dict, List, Optional, Sequence

import numpy as np

from tfrec.metrics.classification import prepare_binary

COLUMNS = ("bucket", "count", "positives", "weight", "positive_weight", "p_min", "p_max", "mean_p",
           "observed_rate", "bias")


def _prepare(labels, probabilities, weights):
    y, p, w = prepare_binary(labels, probabilities, weights)
    if y.size == 0:
        raise ValueError("calibration needs at least one sample; received none")
    if not np.all(np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError("probabilities must be finite and in [0, 1]")
    if not np.all(np.isfinite(w)):
        raise ValueError("weights must be finite and >= 0")
    return y, p, w


def bucket_ids(labels, probabilities, weights=None, num_buckets: int = 45) -> np.ndarray:
    """The bucket of every sample (in the input order) under the rule of the module docstring."""
    if isinstance(num_buckets, bool) or int(num_buckets) != num_buckets or num_buckets < 1:
        raise ValueError(f"`num_buckets` must be an integer >= 1. Received: num_buckets={num_buckets!r}")
    num_buckets = int(num_buckets)
    y, p, w = _prepare(labels, probabilities, weights)
    pw = w * y
    total = float(pw.sum())
    if total <= 0:
        raise ValueError("calibration by positive-frequency buckets needs positives: the samples have no positive "
                         "(weight)")
    order = np.argsort(p, kind="stable")
    ps, cum = p[order], np.cumsum(pw[order])
    cum[-1] = total  # the last cumulative value is the total exactly
    x = num_buckets * cum / total
    # Float cumulative sums of non-integer weights (0.1 + 0.1 + 0.1 ...) land a hair beside an exact boundary;
    # snap values within a relative 1e-9 of an integer onto it, so equal weights split exactly like unit weights.
    nearest = np.round(x)
    x = np.where(np.abs(x - nearest) <= 1e-9 * np.maximum(1.0, x), nearest, x)
    raw = np.clip(np.ceil(x) - 1, 0, num_buckets - 1).astype(np.int64)
    # Ties: every sample of a run of equal p takes the bucket of the run's last sample (raw is non-decreasing).
    starts = np.r_[0, np.flatnonzero(np.diff(ps)) + 1]
    ends = np.r_[starts[1:], ps.size] - 1
    raw = np.repeat(raw[ends], ends - starts + 1)
    # Negatives before the first positive join its bucket.
    first_pos = int(np.flatnonzero(pw[order] > 0)[0])
    raw = np.maximum(raw, raw[first_pos])
    # Renumber the non-empty buckets 0..K'-1.
    _, dense = np.unique(raw, return_inverse=True)
    out = np.empty_like(dense)
    out[order] = dense
    return out


def calibration_by_bucket(labels, probabilities, weights=None, num_buckets: int = 45) -> List[Dict[str, float]]:
    """Per-bucket calibration of ``probabilities`` against ``labels`` (KDD 2024 Fig. 8).

    Args:
      labels: ``[n]`` in {0, 1}.
      probabilities: ``[n]`` predicted CTRs in [0, 1].
      weights: optional ``[n]`` sample weights >= 0.
      num_buckets: buckets of equal positive (weight) frequency to cut (>= 1).

    Returns:
      One dict per non-empty bucket, in increasing ``p``, with the keys of :data:`COLUMNS` (see the module
      docstring); possibly fewer than ``num_buckets`` buckets (at most one per positive sample).

    Raises:
      ValueError: no positive weight, mismatched lengths, labels not 0/1, probabilities outside [0, 1] or not
        finite, negative weights, ``num_buckets`` < 1.
    """
    ids = bucket_ids(labels, probabilities, weights, num_buckets)
    y, p, w = _prepare(labels, probabilities, weights)
    k = int(ids.max()) + 1
    count = np.bincount(ids, minlength=k)
    positives = np.bincount(ids, weights=y, minlength=k)
    weight = np.bincount(ids, weights=w, minlength=k)
    pos_weight = np.bincount(ids, weights=w * y, minlength=k)
    pred_weight = np.bincount(ids, weights=w * p, minlength=k)
    rows = []
    for b in range(k):
        in_b = ids == b
        rows.append({
            "bucket": b,
            "count": int(count[b]),
            "positives": int(round(positives[b])),
            "weight": float(weight[b]),
            "positive_weight": float(pos_weight[b]),
            "p_min": float(p[in_b].min()),
            "p_max": float(p[in_b].max()),
            "mean_p": float(pred_weight[b] / weight[b]) if weight[b] > 0 else float("nan"),
            "observed_rate": float(pos_weight[b] / weight[b]) if weight[b] > 0 else float("nan"),
            "bias": float((pred_weight[b] - pos_weight[b]) / pos_weight[b]),
        })
    return rows


def overall_bias(labels, probabilities, weights=None) -> float:
    """``sum w (p - y) / sum w y`` over all samples (NaN without positive weight)."""
    y, p, w = _prepare(labels, probabilities, weights)
    pos = float(np.sum(w * y))
    return float(np.sum(w * (p - y)) / pos) if pos > 0 else float("nan")


def write_csv(rows: Sequence[Dict[str, float]], path: str) -> None:
    """Writes the rows of :func:`calibration_by_bucket` as CSV with a header (:data:`COLUMNS`)."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(COLUMNS))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in row.items()})


def format_table(rows: Sequence[Dict[str, float]], precision: Optional[int] = 5) -> str:
    """A fixed-width text table: bucket, count, positives, mean pCTR, observed CTR, bias."""
    header = ("bucket", "count", "positives", "mean pCTR", "observed CTR", "bias")
    body = []
    for r in rows:
        def f(v):
            return "nan" if isinstance(v, float) and math.isnan(v) else f"{v:.{precision}f}"

        body.append((str(r["bucket"]), f"{r['count']:,}", f"{r['positives']:,}", f(r["mean_p"]),
                     f(r["observed_rate"]), f"{r['bias']:+.{precision}f}"))
    widths = [max(len(h), *(len(row[i]) for row in body)) if body else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.rjust(wd) for h, wd in zip(header, widths))]
    lines += ["  ".join(c.rjust(wd) for c, wd in zip(row, widths)) for row in body]
    return "\n".join(lines)
