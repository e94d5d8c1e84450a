"""Statistics over seeds: mean and standard deviation, and the paired t-test of a setting against its baseline.

* ``summarize(values)``: ``n``, ``mean`` and the sample standard deviation ``std`` (``ddof = 1``); with one
  value the standard deviation is undefined and reported as NaN (never as 0).
* ``paired_test(values, baseline)``: the differences ``d_s = values_s - baseline_s`` over the seeds both have,
  their mean and standard deviation, and the two-sided paired t-test ``t = mean(d) / (std(d) / sqrt(n))`` with
  ``n - 1`` degrees of freedom (``scipy.stats.ttest_rel``). With fewer than two seeds, or differences that are
  all equal to zero, ``t`` and ``p`` are NaN; with all differences equal and nonzero, SciPy's limit
  (``t = +-inf``, ``p = 0``) is kept.
"""

from __future__ import annotations

import math
import warnings
from typing import Dict, Mapping, Optional, Sequence

import numpy as np

NAN = float("nan")


def _clean(values: Sequence[Optional[float]]) -> np.ndarray:
    return np.asarray([float(v) for v in values if v is not None and math.isfinite(float(v))], dtype=np.float64)


def summarize(values: Sequence[Optional[float]]) -> Dict[str, float]:
    """``{"n", "mean", "std"}`` of the finite values (None and NaN are left out)."""
    x = _clean(values)
    n = int(x.size)
    return {"n": n, "mean": float(x.mean()) if n else NAN, "std": float(x.std(ddof=1)) if n > 1 else NAN}


def paired_test(values: Mapping[int, Optional[float]], baseline: Mapping[int, Optional[float]]) -> Dict[str, float]:
    """Paired comparison over the seeds present (and finite) in both mappings (seed -> value).

    Returns:
      ``{"n", "mean_diff", "std_diff", "t", "p"}`` for ``values - baseline``.
    """
    seeds = sorted(s for s in values if s in baseline and values[s] is not None and baseline[s] is not None
                   and math.isfinite(values[s]) and math.isfinite(baseline[s]))
    a = np.asarray([values[s] for s in seeds], dtype=np.float64)
    b = np.asarray([baseline[s] for s in seeds], dtype=np.float64)
    n = len(seeds)
    d = a - b
    out = {"n": n, "mean_diff": float(d.mean()) if n else NAN, "std_diff": float(d.std(ddof=1)) if n > 1 else NAN,
           "t": NAN, "p": NAN}
    if n >= 2 and np.any(d != 0):
        from scipy import stats

        with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            res = stats.ttest_rel(a, b)
        out["t"], out["p"] = float(res.statistic), float(res.pvalue)
    return out


def ratio(value: float, base: float, kind: str) -> float:
    """The paper's lift ratios (Fig. 4): ``lift`` = ``value / base - 1`` (AUC lift ratio), ``drop`` =
    ``1 - value / base`` (BCE loss drop ratio); NaN when ``base`` is 0 or not finite."""
    if not (math.isfinite(value) and math.isfinite(base)) or base == 0:
        return NAN
    if kind == "lift":
        return value / base - 1.0
    if kind == "drop":
        return 1.0 - value / base
    raise ValueError(f"`kind` must be lift or drop. Received: kind={kind!r}")
