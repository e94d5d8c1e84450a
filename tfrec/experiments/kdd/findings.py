"""Findings 1-4 of KDD 2024 (Lin et al., Sec. 3), measured on the ``findings`` protocol's runs.

The paper's statements and what tfrec measures for each (``beta_pos`` = the protocol's, 0.1 by default):

1. "Combined-Pair gets a lower BCE loss than the BCE method on the validation set": the weighted BCE of the
   best weights on the validation split (``sum w BCE / sum w``). Holds when the mean over seeds of
   Combined-Pair - BCE is < 0.
2. "Combined-Pair gets a lower BCE loss than the BCE method on the training set": the training BCE of Eq. 15
   (``sum w BCE / N`` over the training batches, as optimised) averaged over the first epoch (Table 2's
   convention) and over the last epoch (Fig. 1a: "remains consistently lower"). Holds when both differences
   are < 0.
3. "When positive feedback is sparse, the gradients of negative samples vanish since they are proportional to
   the estimated positive rates": the BCE method's first-epoch mean ``|dL/dz|`` over negatives at the sparse
   beta_pos against the same at beta_pos = 1. Eq. 10 gives ``N |dL/dz_j| = p_j`` (N the global batch), so the
   report puts ``N x`` the gradient beside the mean prediction on test negatives and the effective positive
   rate. Holds when the sparse gradient is smaller than the dense one.
4. "When positive feedback is sparse, Combined-Pair has larger gradients for negative samples than the BCE
   method": first-epoch mean ``|dL/dz|`` over negatives (Fig. 2, Table 2). Holds when Combined-Pair - BCE > 0.

"Holds" is the direction of the mean over seeds; the paired t-test's p-value (n/a with one seed) says how sure
that direction is. The numbers are the runs' measurements; nothing is adjusted.
"""

from __future__ import annotations

import math
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence

from tfrec.experiments.core import stats
from tfrec.experiments.core.registry import Metric, Options, Protocol, Setting
from tfrec.experiments.core.report import build_report
from tfrec.experiments.core.store import write_json
from tfrec.experiments.core.tables import per_seed
from tfrec.experiments.kdd.metrics import METRICS
from tfrec.experiments.kdd.plots import plot_all

STATEMENTS = {
    1: "Combined-Pair gets a lower BCE loss than the BCE method on the validation set.",
    2: "Combined-Pair gets a lower BCE loss than the BCE method on the training set.",
    3: "When positive feedback is sparse, the gradients of negative samples vanish (they are proportional to the "
       "estimated positive rate).",
    4: "When positive feedback is sparse, Combined-Pair has larger gradients for negative samples than the BCE "
       "method.",
}


def _compare(results, a: str, b: str, metric: Metric) -> Dict[str, Any]:
    va, vb = per_seed(results, a, metric), per_seed(results, b, metric)
    return {"metric": metric.label, a: stats.summarize(list(va.values()))["mean"],
            b: stats.summarize(list(vb.values()))["mean"], **stats.paired_test(va, vb)}


def _mean(results, setting: str, metric: Metric) -> float:
    return stats.summarize(list(per_seed(results, setting, metric).values()))["mean"]


def evaluate_findings(results: Mapping[Any, Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The four findings (dicts: ``finding``, ``statement``, ``measured``, ``holds``, ``p``)."""
    out = []
    f1 = _compare(results, "combined_pair", "bce", METRICS["valid_logloss"])
    out.append({"finding": 1, "measured": [f1], "holds": _lt0(f1), "p": f1["p"]})
    first = _compare(results, "combined_pair", "bce", METRICS["train_bce"])
    last = _compare(results, "combined_pair", "bce", METRICS["train_bce_last"])
    holds2 = None if _lt0(first) is None or _lt0(last) is None else (_lt0(first) and _lt0(last))
    out.append({"finding": 2, "measured": [first, last], "holds": holds2, "p": first["p"]})
    grad = METRICS["grad_neg"]
    f3 = _compare(results, "bce", "bce_dense", grad)
    detail = {}
    for name in ("bce", "bce_dense"):
        n = _mean(results, name, METRICS["global_batch"])
        detail[name] = {
            "N x mean |dL/dz-| (epoch 1)": _mean(results, name, grad) * n,
            "mean prediction on test negatives": _mean(results, name, METRICS["pred_neg"]),
            "effective positive rate (test)": _mean(results, name, METRICS["effective_positive_rate"]),
        }
    rate = detail["bce"]["effective positive rate (test)"] / detail["bce_dense"]["effective positive rate (test)"] \
        if detail["bce_dense"]["effective positive rate (test)"] else math.nan
    f3["gradient ratio sparse/dense"] = (f3["bce"] / f3["bce_dense"]) if f3["bce_dense"] else math.nan
    f3["effective positive rate ratio sparse/dense"] = rate
    out.append({"finding": 3, "measured": [f3], "detail": detail, "holds": _lt0(f3), "p": f3["p"]})
    f4 = _compare(results, "combined_pair", "bce", grad)
    out.append({"finding": 4, "measured": [f4], "holds": None if _lt0(f4) is None else (f4["mean_diff"] > 0),
                "p": f4["p"]})
    for f in out:
        f["statement"] = STATEMENTS[f["finding"]]
    return out


def _lt0(comparison: Dict[str, Any]) -> Optional[bool]:
    d = comparison["mean_diff"]
    return None if d is None or not math.isfinite(d) else bool(d < 0)


def _v(x: Any, sci: bool = False) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:.3e}" if sci or abs(x) < 1e-3 else f"{x:.5f}"


def markdown(findings: Sequence[Dict[str, Any]], beta_pos: float, seeds: int) -> str:
    lines = [f"# Findings 1-4 at beta_pos = {beta_pos:g} ({seeds} seed(s))", "",
             "| finding | statement | measured (mean over seeds) | Δ (p) | holds |", "|---|---|---|---|---|"]
    for f in findings:
        parts, diffs = [], []
        for m in f["measured"]:
            names = [k for k in m if k not in ("metric", "n", "mean_diff", "std_diff", "t", "p") and "ratio" not in k]
            sci = "grad" in m["metric"]
            parts.append(f"{m['metric']}: " + ", ".join(f"{k} {_v(m[k], sci)}" for k in names))
            p = m["p"]
            diffs.append(f"{_v(m['mean_diff'], sci)} (p {'n/a' if p is None or not math.isfinite(p) else f'{p:.3g}'})")
        holds = {True: "yes", False: "no", None: "n/a"}[f["holds"]]
        lines.append(f"| {f['finding']} | {f['statement']} | {'; '.join(parts)} | {'; '.join(diffs)} | {holds} |")
    f3 = next(f for f in findings if f["finding"] == 3)
    lines += ["", "Finding 3, Eq. 10 (N |dL/dz_j| = p_j for BCE):", "",
              "| setting | N x mean |dL/dz-| (epoch 1) | mean prediction, test negatives | effective positive rate |",
              "|---|---|---|---|"]
    for name, d in f3["detail"].items():
        lines.append(f"| {name} | " + " | ".join(_v(v) for v in d.values()) + " |")
    m = f3["measured"][0]
    lines += ["", f"Gradient ratio sparse / dense {_v(m['gradient ratio sparse/dense'])}; effective positive rate "
                  f"ratio {_v(m['effective positive rate ratio sparse/dense'])}.", "",
              "A finding \"holds\" when the mean over seeds points the paper's way; the p-value of the paired t-test "
              "over seeds says how reliable that direction is (n/a with one seed).", ""]
    return "\n".join(lines)


def build_findings_report(protocol: Protocol, settings: Sequence[Setting], results: Mapping[Any, Dict[str, Any]],
                          out_dir: str, opts: Options) -> List[str]:
    """The KDD report (the table and the paper's figures) plus ``findings.md`` and ``findings.json``."""
    files = build_report(protocol, settings, results, out_dir, opts, plot_all=plot_all)
    findings = evaluate_findings(results)
    seeds = len({c.seed for c, r in results.items() if r})
    md = os.path.join(out_dir, "findings.md")
    with open(md, "w", encoding="utf-8") as f:
        f.write(markdown(findings, opts.beta_pos, seeds))
    js = os.path.join(out_dir, "findings.json")
    write_json(js, {"beta_pos": opts.beta_pos, "findings": findings})
    return files + [md, js]
