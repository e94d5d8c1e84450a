"""The result table of a protocol: one row per setting, mean and standard deviation over seeds, and the paired
difference to the setting's baseline (the BCE method) with its t-test; as CSV (every number at full precision)
and Markdown.

Columns, per metric ``m`` of the protocol (``Protocol.metrics``, declared by each protocol): ``m_mean``, ``m_std``,
``m_n`` (seeds), and where the setting has a baseline ``m_diff`` (mean over seeds of setting - baseline),
``m_diff_std``, ``m_t``, ``m_p`` (``tfrec.experiments.core.stats.paired_test``) and, for AUC and BCE, ``m_ratio``: the
paper's AUC lift ratio ``mean / mean_base - 1`` or BCE drop ratio ``1 - mean / mean_base`` (Fig. 4), of the
means over seeds.
"""

from __future__ import annotations

import csv
import math
import os
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

from tfrec.experiments.core import stats
from tfrec.experiments.core.registry import Metric, Protocol, Setting, metric_value


def per_seed(results: Mapping[Any, Dict[str, Any]], setting: str,
             metric: Union[Metric, Callable[[Dict[str, Any]], Optional[float]]]) -> Dict[int, float]:
    """seed -> the metric of every finished cell of ``setting`` (a :class:`Metric`, or a function of a run that
    returns the value or None)."""
    value_of = metric if callable(metric) else (lambda run: metric_value(run, metric))
    out = {}
    for cell, result in results.items():
        if result is not None and cell.setting == setting:
            value = value_of(result["run"])
            if value is not None:
                out[cell.seed] = value
    return out


def aggregate(protocol: Protocol, settings: Sequence[Setting], results: Mapping[Any, Dict[str, Any]]
              ) -> List[Dict[str, Any]]:
    """The table's rows (dicts), in the order of ``settings``."""
    names = {s.name for s in settings}
    rows = []
    for s in settings:
        row: Dict[str, Any] = {"setting": s.name, **{f"param_{k}": v for k, v in s.params.items()},
                               "baseline": s.baseline or ""}
        for metric in protocol.metrics:
            key = metric.key
            values = per_seed(results, s.name, metric)
            summary = stats.summarize(list(values.values()))
            row[f"{key}_n"], row[f"{key}_mean"], row[f"{key}_std"] = summary["n"], summary["mean"], summary["std"]
            if s.baseline and s.baseline in names:
                base = per_seed(results, s.baseline, metric)
                test = stats.paired_test(values, base)
                row[f"{key}_diff"], row[f"{key}_diff_std"] = test["mean_diff"], test["std_diff"]
                row[f"{key}_t"], row[f"{key}_p"] = test["t"], test["p"]
                if metric.ratio:
                    base_mean = stats.summarize(list(base.values()))["mean"]
                    row[f"{key}_ratio"] = stats.ratio(summary["mean"], base_mean, metric.ratio)
        rows.append(row)
    return rows


def _columns(rows: Sequence[Dict[str, Any]]) -> List[str]:
    cols: List[str] = []
    for row in rows:
        cols += [k for k in row if k not in cols]
    return cols


def write_csv(rows: Sequence[Dict[str, Any]], path: str) -> str:
    """Writes the rows (floats as ``repr``, so they read back exactly; missing or NaN as empty)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    cols = _columns(rows)
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for row in rows:
            w.writerow([_csv_value(row.get(c)) for c in cols])
    return path


def _csv_value(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return repr(v) if isinstance(v, float) else str(v)


def _num(v: Any, scientific: bool = False, digits: int = 5) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a" if v is None or math.isnan(v) else ("inf" if v > 0 else "-inf")
    return f"{v:.{2}e}" if scientific else f"{v:.{digits}f}"


def format_p(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:.3f}" if v >= 0.001 else f"{v:.1e}"


def _param(v: Any) -> str:
    """A parameter cell: floats as ``%g``, a parameter the setting does not have (BCE's alpha) empty."""
    if v is None or v == "":
        return ""
    return f"{v:g}" if isinstance(v, float) else str(v)


def markdown(protocol: Protocol, rows: Sequence[Dict[str, Any]]) -> str:
    """The table in Markdown: ``mean ± std`` per metric, then ``Δ`` to the baseline with the paired p-value."""
    params = [c for c in _columns(rows) if c.startswith("param_") and c != "param_method"]
    head = ["setting", "method", *[c[len("param_"):] for c in params], "seeds"]
    for metric in protocol.metrics:
        head += [metric.label, "Δ vs baseline (p)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        n = max(int(row.get(f"{k}_n", 0)) for k in protocol.metric_keys)
        cells = [row["setting"], str(row.get("param_method", "")), *[_param(row.get(c)) for c in params], str(n)]
        for m in protocol.metrics:
            key = m.key
            mean, std = row.get(f"{key}_mean"), row.get(f"{key}_std")
            cells.append(_num(mean, m.scientific) + ("" if std is None or math.isnan(std)
                                                     else f" ± {_num(std, m.scientific)}"))
            if f"{key}_diff" in row:
                diff = row[f"{key}_diff"]
                sign = "+" if isinstance(diff, float) and diff >= 0 else ""
                cells.append(f"{sign}{_num(diff, m.scientific)} (p {format_p(row.get(f'{key}_p'))})")
            else:
                cells.append("")
        lines.append("| " + " | ".join(cells) + " |")
    baselines = sorted({r["baseline"] for r in rows if r.get("baseline")})
    note = (f"\nMean ± standard deviation over seeds (n/a with one seed). Δ: mean over seeds of the paired difference "
            f"setting - baseline ({', '.join(baselines) or 'none'}), p: two-sided paired t-test over seeds.\n")
    return "\n".join(lines) + "\n" + note


def write_results(rows: Sequence[Dict[str, Any]], text: str, out_dir: str) -> List[str]:
    """Writes the table's rows to ``out_dir/results.csv`` (:func:`write_csv`) and ``text`` (its Markdown) to
    ``out_dir/results.md``; returns the two paths."""
    os.makedirs(out_dir, exist_ok=True)
    md = os.path.join(out_dir, "results.md")
    with open(md, "w", encoding="utf-8") as f:
        f.write(text)
    return [write_csv(rows, os.path.join(out_dir, "results.csv")), md]


def write_markdown(protocol: Protocol, rows: Sequence[Dict[str, Any]], path: str) -> str:
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"# {protocol.title}\n\n{markdown(protocol, rows)}")
    return path
