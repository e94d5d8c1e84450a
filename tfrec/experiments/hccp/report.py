"""The report of the ``hccp`` protocol: the paper's Table 1 (hit rates) and Table 3 (consistency), AUC, the
ablations against full HCCP, and Fig. 7 (hit rate per item-popularity octile).

Files written to the protocol's report directory:

* ``results.csv``: one row per variant; per metric ``m`` of the test report (``ISH@10``, ``MAP@10``,
  ``AUC_click``, ..., and ``octile_ISH@K[q]`` per octile ``q``): ``m_n``, ``m_mean``, ``m_std`` over seeds; for
  every variant but Base ``m_diff``, ``m_diff_std``, ``m_t``, ``m_p``, the paired difference variant - Base over
  seeds and its two-sided t-test (:func:`tfrec.experiments.core.stats.paired_test`); for the w/o rows the same
  against full HCCP as ``m_vs_hccp_diff`` ... ``m_vs_hccp_p``; ``beta_end_n`` / ``_mean`` / ``_std``: Margin
  InfoNCE's ``beta`` at the end of training over seeds (n 0 for the variants without it). Every number at full
  precision, as fractions.
* ``results.md``: the tables in the paper's shape (rows Base, Base+ListNet, Base+ListMLE, the w/o rows, HCCP):
  values as ``mean ± std``, differences in percentage points (pp) with the paired p-value, and each variant's
  ``beta`` at the end of training.
* ``octiles.png``: hit@K per popularity octile (0 = most popular) per variant for ISH and ISPH, absolute and as
  the difference to Base in pp (Fig. 7).
"""

from __future__ import annotations

import math
import os
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import numpy as np

from tfrec.experiments.core import stats
from tfrec.experiments.core.plots import pyplot
from tfrec.experiments.core.registry import Options, Protocol, Setting
from tfrec.experiments.core import tables
from tfrec.experiments.core.tables import format_p
from tfrec.experiments.hccp.variants import ABLATIONS, FULL

HIT_FAMILIES = ("ISH", "ISPH", "ASH", "ASPH")
CONSISTENCY_FAMILIES = ("MAP", "NDCG")


def _runs(results: Mapping[Any, Dict[str, Any]]) -> List[Dict[str, Any]]:
    return [r["run"] for r in results.values() if r is not None]


def metric_keys(results: Mapping[Any, Dict[str, Any]]) -> Dict[str, List[str]]:
    """The scalar metrics of the runs' test reports, by table: ``hit``, ``consistency``, ``auc``, ``octile``."""
    test = next((r["test"] for r in _runs(results)), {})

    def family(prefix: str) -> List[str]:
        keys = [k for k in test if k.startswith(prefix + "@")]
        return sorted(keys, key=lambda k: int(k.split("@")[1]))

    octile = [f"{k}[{q}]" for k in test if k.startswith("octile_") for q in range(len(test[k]))]
    return {"hit": [k for f in HIT_FAMILIES for k in family(f)],
            "consistency": [k for f in CONSISTENCY_FAMILIES for k in family(f)],
            "auc": sorted(k for k in test if k.startswith("AUC_")), "octile": octile}


def value_of(run: Dict[str, Any], key: str):
    """A metric of a run's test report (``octile_ISH@40[3]``: one octile of a list); None when absent or NaN."""
    name, index = (key[:-1].split("[") + [None])[:2] if key.endswith("]") else (key, None)
    v = run.get("test", {}).get(name)
    if index is not None:
        v = v[int(index)] if isinstance(v, list) and int(index) < len(v) else None
    return float(v) if v is not None and math.isfinite(float(v)) else None


def per_seed(results: Mapping[Any, Dict[str, Any]], setting: str, key: str) -> Dict[int, float]:
    """seed -> the test metric ``key`` (:func:`value_of`) of every finished cell of ``setting``."""
    return tables.per_seed(results, setting, lambda run: value_of(run, key))


def _paired(row: Dict[str, Any], prefix: str, values, base) -> None:
    test = stats.paired_test(values, base)
    row[f"{prefix}_diff"], row[f"{prefix}_diff_std"] = test["mean_diff"], test["std_diff"]
    row[f"{prefix}_t"], row[f"{prefix}_p"] = test["t"], test["p"]


def aggregate(settings: Sequence[Setting], results: Mapping[Any, Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The rows of ``results.csv`` (module docstring), in the order of ``settings``."""
    names = {s.name for s in settings}
    keys = [k for group in metric_keys(results).values() for k in group]
    rows = []
    for s in settings:
        row: Dict[str, Any] = {"setting": s.name, "method": s.params.get("method", s.name),
                               "group": s.params.get("group", ""), "baseline": s.baseline or ""}
        for key in keys:
            values = per_seed(results, s.name, key)
            summary = stats.summarize(list(values.values()))
            row[f"{key}_n"], row[f"{key}_mean"], row[f"{key}_std"] = summary["n"], summary["mean"], summary["std"]
            if s.baseline and s.baseline in names:
                _paired(row, key, values, per_seed(results, s.baseline, key))
            if s.name in ABLATIONS and FULL in names:
                _paired(row, f"{key}_vs_hccp", values, per_seed(results, FULL, key))
        betas = [r["run"]["beta_end"] for c, r in results.items()
                 if r is not None and c.setting == s.name and finite(r["run"].get("beta_end"))]
        summary = stats.summarize(betas)
        row["beta_end_n"], row["beta_end_mean"], row["beta_end_std"] = summary["n"], summary["mean"], summary["std"]
        rows.append(row)
    return rows


def finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def value_cell(row, key) -> str:
    mean, std = row.get(f"{key}_mean"), row.get(f"{key}_std")
    if not finite(mean):
        return "n/a"
    return f"{mean:.4f}" + (f" ± {std:.4f}" if finite(std) else "")


def _beta_cell(row, key) -> str:
    mean = row.get(f"{key}_mean")
    return f"{mean:.4g}" if row.get(f"{key}_n") and finite(mean) else "-"


def _diff_cell(row, prefix) -> str:
    if f"{prefix}_diff" not in row:
        return "-"
    d = row[f"{prefix}_diff"]
    if not finite(d):
        return "n/a"
    return f"{100 * d:+.2f} (p {format_p(row.get(f'{prefix}_p'))})"


def _table(rows, keys: Sequence[str], cell, title: str, label_rows=None) -> str:
    label_rows = rows if label_rows is None else label_rows
    head = ["method", "seeds", *keys]
    lines = [f"### {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in label_rows:
        n = max([int(row.get(f"{k}_n", 0)) for k in keys] or [0])
        lines.append("| " + " | ".join([row["method"], str(n), *[cell(row, k) for k in keys]]) + " |")
    return "\n".join(lines) + "\n"


def markdown(protocol: Protocol, rows: Sequence[Dict[str, Any]], keys: Dict[str, List[str]]) -> str:
    """``results.md``: per table, the values (mean ± std over seeds) and the paired differences in pp."""
    ablations = [r for r in rows if r["setting"] in ABLATIONS]
    parts = [f"# {protocol.title}\n"]
    for name, group in (("Table 1: hit rates over the pre-ranking candidates", keys["hit"]),
                        ("Table 3: consistency with the ranking stage's top-K", keys["consistency"]),
                        ("AUC on the test impressions", keys["auc"])):
        if not group:
            continue
        parts.append(_table(rows, group, value_cell, f"{name} (mean ± std over seeds)"))
        parts.append(_table(rows, group, _diff_cell, f"{name}: Δ vs Base, pp (paired t-test p)"))
        if ablations:
            parts.append(_table(rows, group, lambda r, k: _diff_cell(r, f"{k}_vs_hccp"),
                                f"{name}: ablations, Δ vs HCCP, pp (paired t-test p)", ablations))
    if any(row["beta_end_n"] for row in rows):
        parts.append(_table(rows, ["beta_end"], _beta_cell, "Margin InfoNCE beta at the end of training (mean over "
                            "seeds; -: a variant without the margin loss)"))
    if keys["octile"]:
        parts.append(_table(rows, keys["octile"], value_cell,
                            "Fig. 7: hit rate per item-popularity octile (0 = most popular; mean ± std)"))
    parts.append("Values are fractions on the test split; Δ is the mean over seeds of the paired difference "
                 "(variant - Base, or variant - HCCP), in percentage points; p: two-sided paired t-test over seeds "
                 "(n/a with one seed). n/a: no positive of that kind in the test lists.\n")
    return "\n".join(parts)


def plot_octiles(settings: Sequence[Setting], rows: Sequence[Dict[str, Any]], keys: Sequence[str],
                 path: str) -> str:
    """Fig. 7: hit@K per octile per variant, absolute (top) and Δ vs Base in pp (bottom)."""
    plt = pyplot()
    families: Dict[str, List[Tuple[int, str]]] = {}
    for k in keys:
        name, q = k[:-1].split("[")
        families.setdefault(name, []).append((int(q), k))
    fig, axes = plt.subplots(2, max(1, len(families)), figsize=(6 * max(1, len(families)), 7.5), squeeze=False)
    by_name = {r["setting"]: r for r in rows}
    for col, (family, octs) in enumerate(families.items()):
        qs = [q for q, _ in octs]
        for i, s in enumerate(settings):
            row, color = by_name[s.name], f"C{i % 10}"  # one color per variant in both rows
            mean = np.array([row.get(f"{k}_mean", math.nan) for _, k in octs], dtype=np.float64)
            axes[0, col].plot(qs, mean, marker="o", label=row["method"], color=color)
            diff = np.array([100 * row.get(f"{k}_diff", math.nan) for _, k in octs], dtype=np.float64)
            if s.baseline:
                axes[1, col].plot(qs, diff, marker="o", label=row["method"], color=color)
        axes[0, col].set_ylabel(family.replace("octile_", ""))
        axes[1, col].set_ylabel(family.replace("octile_", "") + ": Δ vs Base (pp)")
        axes[1, col].axhline(0.0, color="grey", lw=0.8)
        for ax in axes[:, col]:
            ax.set_xlabel("item-popularity octile (0 = most popular)")
            ax.set_xticks(qs)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    fig.suptitle("Hit rate per item-popularity octile (HCCP Fig. 7)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def build_hccp_report(protocol: Protocol, settings: Sequence[Setting], results: Mapping[Any, Dict[str, Any]],
                      out_dir: str, opts: Options) -> List[str]:
    """Writes ``results.csv``, ``results.md``, ``octiles.png`` (module docstring) and Fig. 4's ``fig4_ash.png`` /
    ``.csv`` (:mod:`tfrec.experiments.hccp.fig4`); returns the paths."""
    keys = metric_keys(results)
    rows = aggregate(settings, results)
    files = tables.write_results(rows, markdown(protocol, rows, keys), out_dir)
    if keys["octile"]:
        files.append(plot_octiles(settings, rows, keys["octile"], os.path.join(out_dir, "octiles.png")))
    from tfrec.experiments.hccp.fig4 import plot_fig4

    files += plot_fig4(settings, results, os.path.join(out_dir, "fig4_ash.png"))  # Fig. 4 (runs that record it)
    return files
