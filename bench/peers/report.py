"""The result of ``bench/bench_peers.py``: per library the mean and spread over seeds, the ratios tfrec / peer, and
the Markdown table."""

from __future__ import annotations

import math
from typing import Dict, List, Optional

from bench.peers.common import mean_std

LIBRARIES = ("tfrec", "deepctr", "deepctr_emb", "fuxictr")
TITLES = {"tfrec": "tfrec DCN V2", "deepctr": "DeepCTR DCN (matrix)",
          "deepctr_emb": "DeepCTR DCN (matrix), numeric embedded", "fuxictr": "FuxiCTR DCNv2"}


def summarize(library: str, prep: Optional[dict], runs: List[dict], error: Optional[str] = None) -> dict:
    """One library's row: examples/s, peak RSS, test AUC and logloss over its seeds (mean, std), prep time.

    Args:
      prep: the measured prepare step (``wall_seconds``, ``peak_rss_mb``, ...), or None.
      runs: one entry per seed: the measured process (``peak_rss_mb``, ...) with the worker's result under
        ``result``.
      error: why the library did not run (the row then carries only that).
    """
    ok = [r for r in runs if r.get("result")]
    row = {"library": library, "title": TITLES.get(library, library), "error": error,
           "seeds": [r["result"]["seed"] for r in ok],
           "examples_per_second": mean_std(r["result"]["train"]["examples_per_second"] for r in ok),
           "examples_per_cpu_second": mean_std(r["result"]["train"].get("examples_per_cpu_second") for r in ok),
           "auc": mean_std(r["result"]["test"]["auc"] for r in ok),
           "logloss": mean_std(r["result"]["test"]["logloss"] for r in ok),
           "peak_rss_mb": max((r["peak_rss_mb"] for r in ok), default=float("nan")),
           "peak_tree_pss_mb": max((r["peak_tree_pss_mb"] for r in ok), default=float("nan")),
           "prep_seconds": prep["wall_seconds"] if prep and prep.get("rc") == 0 else float("nan"),
           "prep_peak_rss_mb": prep["peak_rss_mb"] if prep and prep.get("rc") == 0 else float("nan"),
           "test_rows": sorted({r["result"]["test"]["rows"] for r in ok}),
           "failed_runs": [{"seed": r.get("seed"), "reason": r.get("reason")} for r in runs if not r.get("result")]}
    return row


def ratios(rows: Dict[str, dict], base: str = "tfrec") -> Dict[str, dict]:
    """tfrec / peer for examples/s, RSS and prep time; the AUC and logloss differences (tfrec - peer) with their
    standard error over the seeds, and whether the AUC difference is within noise (|d| <= 2 SE)."""
    out = {}
    b = rows.get(base)
    if not b or b.get("error"):
        return out
    for name, r in rows.items():
        if name == base or r.get("error"):
            continue
        se = math.sqrt(_var(b["auc"]) + _var(r["auc"]))
        d_auc = b["auc"]["mean"] - r["auc"]["mean"]
        out[name] = {
            "examples_per_second": _div(b["examples_per_second"]["mean"], r["examples_per_second"]["mean"]),
            "examples_per_cpu_second": _div(b["examples_per_cpu_second"]["mean"],
                                            r["examples_per_cpu_second"]["mean"]),
            "peak_rss": _div(b["peak_rss_mb"], r["peak_rss_mb"]),
            "prep_seconds": _div(b["prep_seconds"], r["prep_seconds"]),
            "auc_difference": d_auc, "auc_difference_se": se,
            "auc_within_noise": bool(abs(d_auc) <= 2 * se) if se > 0 else None,
            "logloss_difference": b["logloss"]["mean"] - r["logloss"]["mean"],
        }
    return out


def _var(stat: dict) -> float:
    n = stat.get("n") or 0
    return (stat["std"] ** 2) / n if n > 1 else 0.0


def _div(a: float, b: float) -> float:
    return a / b if b and math.isfinite(a) and math.isfinite(b) else float("nan")


def _pm(stat: dict, digits: int) -> str:
    if not stat.get("n"):
        return "-"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def _num(x: float, fmt: str) -> str:
    return format(x, fmt) if isinstance(x, (int, float)) and math.isfinite(x) else "-"


def markdown(rows: Dict[str, dict], rat: Dict[str, dict], seeds: int) -> str:
    """The table (library x examples/s x RSS x AUC x logloss x prep time) and the ratios, as Markdown."""
    lines = [f"| library | training examples/s (mean ± std, {seeds} seeds) | examples per CPU-second | "
             "peak RSS MB (process; tree PSS) | test AUC (mean ± std) | test logloss (mean ± std) | "
             "prep s (raw CSV -> training input) |",
             "|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        if r.get("error"):
            lines.append(f"| {r['title']} | not run: {r['error']} | | | | | |")
            continue
        lines.append(f"| {r['title']} | {_pm(r['examples_per_second'], 0)} | "
                     f"{_num(r['examples_per_cpu_second']['mean'], ',.0f')} | {_num(r['peak_rss_mb'], ',.0f')}; "
                     f"{_num(r['peak_tree_pss_mb'], ',.0f')} | {_pm(r['auc'], 4)} | {_pm(r['logloss'], 4)} | "
                     f"{_num(r['prep_seconds'], '.1f')} |")
    if rat:
        lines += ["", "| tfrec / peer | examples/s | examples per CPU-second | peak RSS | prep time | "
                      "AUC difference (± 1 SE) | AUC within noise (\\|d\\| ≤ 2 SE) | logloss difference |",
                  "|---|---|---|---|---|---|---|---|"]
        for name, q in rat.items():
            noise = {True: "yes", False: "no", None: "-"}[q["auc_within_noise"]]
            lines.append(f"| {TITLES.get(name, name)} | {_num(q['examples_per_second'], '.2f')}x | "
                         f"{_num(q['examples_per_cpu_second'], '.2f')}x | "
                         f"{_num(q['peak_rss'], '.2f')}x | {_num(q['prep_seconds'], '.2f')}x | "
                         f"{q['auc_difference']:+.4f} ± {q['auc_difference_se']:.4f} | {noise} | "
                         f"{q['logloss_difference']:+.4f} |")
    return "\n".join(lines) + "\n"
