"""The report of the ``hccp-taobao`` protocol: HCCP's Table 2 (AUC, ISH@2, ISH@5 on the Taobao test day).

Files under ``<out>/hccp-taobao/``:

* ``results.csv``: one row per variant: per metric ``<m>_n``, ``<m>_mean``, ``<m>_std`` over seeds, and (not for
  Base) the paired difference to Base ``<m>_diff``, ``<m>_diff_std``, ``<m>_t``, ``<m>_p``
  (:func:`tfrec.experiments.core.stats.paired_test`); the paper's value ``<m>_paper`` and its difference to the
  paper's Base ``<m>_paper_diff``;
* ``results.md``: Table 2 as the paper prints it (value and "Impr" = Δ vs Base in pp), ours (mean +- std, Δ with
  its paired t-test p) beside the paper's, and the dataset's notes: the ranker's test AUC and the sample types the
  public log cannot give (no N2 / N3).
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Mapping, Sequence

from tfrec.experiments.core import stats
from tfrec.experiments.core.registry import Options, Protocol, Setting
from tfrec.experiments.core import tables
from tfrec.experiments.core.tables import format_p
from tfrec.experiments.hccp.report import finite, per_seed
from tfrec.experiments.hccp.report import value_cell as _ours  # mean ± std of a metric

METRICS = ("AUC", "ISH@2", "ISH@5")
#: HCCP Table 2 (AUC, ISH@2, ISH@5 on the public Taobao dataset), by variant.
PAPER: Dict[str, Dict[str, float]] = {
    "base": {"AUC": 0.7515, "ISH@2": 0.4947, "ISH@5": 0.7531},
    "base_listnet": {"AUC": 0.7684, "ISH@2": 0.4991, "ISH@5": 0.7580},
    "base_listmle": {"AUC": 0.7669, "ISH@2": 0.4973, "ISH@5": 0.7568},
    "copr": {"AUC": 0.7713, "ISH@2": 0.4986, "ISH@5": 0.7567},
    "rethink": {"AUC": 0.7791, "ISH@2": 0.5102, "ISH@5": 0.7621},
    "hccp": {"AUC": 0.7807, "ISH@2": 0.5151, "ISH@5": 0.7675},
}


def metric_keys(results: Mapping[Any, Dict[str, Any]]) -> List[str]:
    """AUC and the ISH@K the runs report (K ascending)."""
    test = next((r["run"]["test"] for r in results.values() if r is not None), {})
    ish = sorted((k for k in test if k.startswith("ISH@")), key=lambda k: int(k.split("@")[1]))
    return ["AUC"] + ish


def aggregate(settings: Sequence[Setting], results: Mapping[Any, Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The rows of ``results.csv`` (module docstring), in the order of ``settings``."""
    names = {s.name for s in settings}
    rows = []
    for s in settings:
        row: Dict[str, Any] = {"setting": s.name, "method": s.params.get("method", s.name),
                               "group": s.params.get("group", ""), "baseline": s.baseline or ""}
        for key in metric_keys(results):
            values = per_seed(results, s.name, key)
            summary = stats.summarize(list(values.values()))
            row[f"{key}_n"], row[f"{key}_mean"], row[f"{key}_std"] = summary["n"], summary["mean"], summary["std"]
            if s.baseline and s.baseline in names:
                test = stats.paired_test(values, per_seed(results, s.baseline, key))
                row[f"{key}_diff"], row[f"{key}_diff_std"] = test["mean_diff"], test["std_diff"]
                row[f"{key}_t"], row[f"{key}_p"] = test["t"], test["p"]
            paper = PAPER.get(s.name, {}).get(key)
            if paper is not None:
                row[f"{key}_paper"] = paper
                row[f"{key}_paper_diff"] = paper - PAPER["base"][key] if s.name != "base" else None
        rows.append(row)
    return rows


def _impr(row, key) -> str:
    if f"{key}_diff" not in row:
        return "-"
    d = row[f"{key}_diff"]
    return f"{100 * d:+.2f}pp (p {format_p(row.get(f'{key}_p'))})" if finite(d) else "n/a"


def _paper(row, key) -> str:
    v, d = row.get(f"{key}_paper"), row.get(f"{key}_paper_diff")
    if v is None:
        return "-"
    return f"{v:.4f}" + (f" ({100 * d:+.2f}pp)" if finite(d) else "")


def _dataset_notes(results: Mapping[Any, Dict[str, Any]]) -> str:
    run = next((r["run"] for r in results.values() if r is not None), None)
    data_dir = ((run or {}).get("config") or {}).get("data", {}).get("dir")
    path = os.path.join(data_dir, "stats.json") if data_dir else ""
    if not path or not os.path.exists(path):
        return ""
    with open(path, encoding="utf-8") as f:
        st = json.load(f)
    lines = ["Dataset: " + ", ".join(f"{s} {n:,} requests" for s, n in st.get("requests_written", {}).items())
             + f" ({data_dir})."]
    ranker = st.get("ranker") or {}
    if finite(ranker.get("test_auc")):
        lines.append(f"Ranker: {ranker.get('model', 'DIN')}, test AUC {ranker['test_auc']:.4f} on the test "
                     "impressions; its scores give the ranking orders of the lists.")
    for t, why in sorted((st.get("absent_sample_types") or {}).items()):
        lines.append(f"No {t} samples ({why}).")
    return "\n".join(lines) + "\n"


def markdown(protocol: Protocol, rows: Sequence[Dict[str, Any]], keys: Sequence[str], notes: str) -> str:
    """``results.md``: ours and the paper's Table 2."""
    head = ["method", "seeds"] + [h for k in keys for h in (f"{k} (ours)", "Impr (ours)", f"{k} (paper)")]
    lines = [f"# {protocol.title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        n = max([int(row.get(f"{k}_n", 0)) for k in keys] or [0])
        cells = [row["method"], str(n)]
        for k in keys:
            cells += [_ours(row, k), _impr(row, k), _paper(row, k)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Ours: mean ± std over seeds on the test day; Impr: mean over seeds of the paired difference to "
              "Base in percentage points (p: two-sided paired t-test, n/a with one seed). Paper: HCCP Table 2 "
              "(its Impr in brackets).", "", notes]
    return "\n".join(lines)


def build_taobao_report(protocol: Protocol, settings: Sequence[Setting], results: Mapping[Any, Dict[str, Any]],
                        out_dir: str, opts: Options) -> List[str]:
    """Writes ``results.csv`` and ``results.md``; returns their paths."""
    keys = metric_keys(results)
    rows = aggregate(settings, results)
    return tables.write_results(rows, markdown(protocol, rows, keys, _dataset_notes(results)), out_dir)
