"""HCCP Fig. 4: the all-scenario click hit rate ASH@K of the ranking stage and of pre-ranking, as K grows.

The paper (Zhao et al., WWW 2025, Sec. 3.1 "Non-uniform Sampling Strategy" and Fig. 4) plots, in JD's system,
ASH@K of the ranking model's order and of the pre-ranking model's order over K, and reads off the K (600 there)
beyond which pre-ranking's ASH exceeds ranking's: the ranking stage is accurate on its top items and not on its
tail, which sets the chunk boundary of the non-uniform sampling. ASH@K is Sec. 4.1.2's hit@K,

    hit@K = 1/|U| sum_u  sum_{j <= K} 1(j in I_u) / |I_u|,

with ``I_u`` the user's all-scenario clicks of the day (``all_scenario_clicks``; ``|I_u|`` counts the clicks on
items that were never retrieved) and the mean over the requests with ``|I_u| > 0``, exactly as
:func:`tfrec.evaluate_preranking.preranking_report`'s ``ASH@K`` (the same candidates N1-N3, the same ties: a
stable order, slot order first).

Readings:

* "pre-ranking" is the trained model under evaluation: its click score orders the request's retrieved candidates.
  One curve per variant of the ``hccp`` protocol (mean over seeds).
* "ranking" is the ranking stage of the logged cascade: its order ``r`` (1-based, the ``rank`` field) over the
  ``N^r`` candidates it scored. Its curve stops at ``K = max r``: the ranking stage ranks no more candidates (in
  the paper's Fig. 4 the ranking stage scores every K shown). The ranking curve depends on the test data only,
  not on the model, so it is the same in every run of one dataset (the plot takes the first run's).
* K runs over every value 1 .. the longest candidate list of the test split (the paper's axis is continuous).

Each run records its curves (:func:`ash_curves`, in the run's ``fig4_ash``); :func:`plot_fig4` writes
``fig4_ash.png`` and ``fig4_ash.csv`` (``curve, k, ash_mean, ash_std, n``) and the crossing K per variant (the
smallest K from which the variant's ASH stays >= ranking's up to ranking's last K; none when it never does).
"""

from __future__ import annotations

import csv
import math
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from tfrec.features import SAMPLE_N1, SAMPLE_N2, SAMPLE_N3

RANKING = "ranking"
FIG4_KEY = "fig4_ash"  # where a run keeps its curves


def _cumulative_hits(scores: np.ndarray, relevant: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``[U, L]``: hits among each row's best ``k + 1`` valid slots (stable order, ties in slot order)."""
    order = np.argsort(np.where(valid, -scores, np.inf), axis=1, kind="stable")
    rel = np.take_along_axis(relevant & valid, order, axis=1)
    return np.cumsum(rel, axis=1)


def _curve(cum: np.ndarray, n: np.ndarray, ks: Sequence[int]) -> List[float]:
    use = n > 0
    if not use.any():
        return [float("nan")] * len(ks)
    return [float(np.mean(cum[use, k - 1] / n[use])) for k in ks]


def ash_curves(data: Dict[str, np.ndarray]) -> Dict[str, Any]:
    """ASH@K for every K of the pre-ranking model (``score_click``) and of the ranking stage (``rank``).

    Args:
      data: :func:`tfrec.evaluate_preranking.collect`'s arrays (``example_mask``, ``sample_type``, ``rank``,
        ``item_id``, ``all_scenario_clicks``, ``score_click``).

    Returns:
      ``{"k": [1..L], "preranking": [ASH@k], "ranking_k": [1..max r], "ranking": [ASH@k], "requests": n}``.
    """
    from tfrec.evaluate_preranking import _membership

    mask = data["example_mask"].astype(bool)
    candidates = mask & np.isin(data["sample_type"], (SAMPLE_N1, SAMPLE_N2, SAMPLE_N3))
    member, n, _ = _membership(data["item_id"], data["all_scenario_clicks"])
    relevant = candidates & member
    longest = int(candidates.sum(axis=1).max()) if candidates.size else 0
    ks = list(range(1, longest + 1))
    pre = _curve(_cumulative_hits(np.asarray(data["score_click"], np.float64), relevant, candidates), n, ks)
    rank = np.asarray(data["rank"], np.int64)
    ranked = candidates & (rank >= 1)
    deepest = int(ranked.sum(axis=1).max()) if ranked.size else 0
    rks = list(range(1, deepest + 1))
    ranking = _curve(_cumulative_hits(-rank.astype(np.float64), relevant, ranked), n, rks)
    return {"k": ks, "preranking": pre, "ranking_k": rks, "ranking": ranking, "requests": int((n > 0).sum())}


def crossing_k(pre: Sequence[float], ranking: Sequence[float]) -> Optional[int]:
    """The smallest K from which ``pre`` >= ``ranking`` at every K up to ranking's last (None: never)."""
    m = min(len(pre), len(ranking))
    ok = [pre[i] >= ranking[i] for i in range(m)]
    if not ok or not ok[-1]:
        return None
    i = m - 1
    while i > 0 and ok[i - 1]:
        i -= 1
    return i + 1


def _stats(curves: List[List[float]]):
    arr = np.asarray(curves, np.float64)
    mean = arr.mean(axis=0)
    std = arr.std(axis=0, ddof=1) if arr.shape[0] > 1 else np.full(arr.shape[1], np.nan)
    return mean, std, arr.shape[0]


def fig4_rows(settings, results: Mapping[Any, Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The rows of ``fig4_ash.csv``: the ranking curve (first run with one) and each setting's mean curve."""
    rows: List[Dict[str, Any]] = []
    runs = {s.name: [r for c, r in sorted(results.items(), key=lambda kv: kv[0].seed)
                     if r and c.setting == s.name and (r.get("run") or {}).get(FIG4_KEY)] for s in settings}
    first = next((rs[0]["run"][FIG4_KEY] for rs in runs.values() if rs), None)
    if first is None:
        return rows
    for k, v in zip(first["ranking_k"], first["ranking"]):
        rows.append({"curve": RANKING, "k": k, "ash_mean": v, "ash_std": float("nan"), "n": 1})
    for s in settings:
        curves = [r["run"][FIG4_KEY]["preranking"] for r in runs[s.name]]
        if not curves:
            continue
        width = min(len(c) for c in curves)
        mean, std, n = _stats([c[:width] for c in curves])
        ks = runs[s.name][0]["run"][FIG4_KEY]["k"][:width]
        rows += [{"curve": s.name, "k": k, "ash_mean": float(m), "ash_std": float(d), "n": n}
                 for k, m, d in zip(ks, mean, std)]
    return rows


def _cell(v) -> str:
    return "" if isinstance(v, float) and not math.isfinite(v) else repr(v) if isinstance(v, float) else str(v)


def plot_fig4(settings, results: Mapping[Any, Dict[str, Any]], path: str) -> List[str]:
    """Writes ``path`` (PNG) and its CSV (module docstring); returns the paths ([] without recorded curves)."""
    rows = fig4_rows(settings, results)
    if not rows:
        return []
    from tfrec.experiments.core.plots import pyplot, save_figure

    csv_path = os.path.splitext(path)[0] + ".csv"
    with open(csv_path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(("curve", "k", "ash_mean", "ash_std", "n"))
        w.writerows([[r["curve"], r["k"], _cell(r["ash_mean"]), _cell(r["ash_std"]), r["n"]] for r in rows])
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    by_curve: Dict[str, list] = {}
    for r in rows:
        by_curve.setdefault(r["curve"], []).append(r)
    ranking = [r["ash_mean"] for r in by_curve.get(RANKING, [])]
    labels = {s.name: s.params.get("method", s.name) for s in settings}
    for name, rs in by_curve.items():
        ks = [r["k"] for r in rs]
        mean = np.array([r["ash_mean"] for r in rs])
        if name == RANKING:
            ax.plot(ks, mean, color="black", linewidth=2.2, label="ranking stage")
            continue
        cross = crossing_k(list(mean), ranking)
        line, = ax.plot(ks, mean, linewidth=1.2,
                        label=f"{labels.get(name, name)} (>= ranking from K={cross})" if cross else labels.get(name, name))
        std = np.array([r["ash_std"] for r in rs])
        if np.isfinite(std).any():
            ax.fill_between(ks, mean - std, mean + std, color=line.get_color(), alpha=0.15)
    ax.set_xlabel("K")
    ax.set_ylabel("ASH@K")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("HCCP Fig. 4: all-scenario click hit rate of ranking and pre-ranking", fontsize=10)
    return [save_figure(fig, path), csv_path]
