"""The text of a reference-results document (:mod:`tfrec.experiments.core.results_doc`): the values and
comparison tables from the cell records, how each number is shown, and the names a reading template may use.

Every function takes the metrics as :class:`tfrec.experiments.core.registry.Metric` objects (a document keeps
their definitions in its ``record.json``, so it renders without the protocol's code)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Dict, List, Mapping, Sequence

from tfrec.experiments.core import stats
from tfrec.experiments.core.registry import Metric

#: Decimals shown for a metric that is not in scientific notation (AUC, logloss, hit rates: fractions).
DECIMALS = 5
#: Metrics per values table (a protocol with more gets several tables, each with the setting columns).
COLUMNS = 6


def flat(values) -> List[Any]:
    """``values`` with each list among them replaced by its items (a cell of several models records each one's
    epochs: :func:`tfrec.experiments.core.results_doc.training_facts`)."""
    out: List[Any] = []
    for v in values:
        out.extend(v if isinstance(v, list) else [v])
    return out


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(float(v))


def metric_dict(metric: Metric) -> Dict[str, Any]:
    """A metric as ``record.json`` keeps it."""
    out = dataclasses.asdict(metric)
    out["path"] = list(metric.path)
    return out


def metric_of(d: Mapping[str, Any]) -> Metric:
    """The :class:`Metric` of a ``record.json`` entry (:func:`metric_dict`)."""
    return Metric(d["key"], d["label"], tuple(d["path"]), d["better"], d.get("ratio"), bool(d.get("scientific")))


def table_rows(cells: Sequence[Dict[str, Any]], metrics: Sequence[Metric]) -> List[Dict[str, Any]]:
    """Per setting (first-seen order): params, seeds, and per metric mean, std, and against the baseline the
    paired diff, its std, t, p, d_z and the lift / drop ratio (:mod:`tfrec.experiments.core.stats`)."""
    by: Dict[str, List[Dict[str, Any]]] = {}
    for c in cells:
        by.setdefault(c["setting"], []).append(c)
    rows = []
    for setting, cs in by.items():
        row: Dict[str, Any] = {"setting": setting, "params": cs[0]["params"], "baseline": cs[0]["baseline"],
                               "seeds": sorted(c["seed"] for c in cs)}
        for m in metrics:
            values = {c["seed"]: c["metrics"].get(m.key) for c in cs}
            summary = stats.summarize(list(values.values()))
            row[m.key] = {"n": summary["n"], "mean": summary["mean"], "std": summary["std"]}
            base = cs[0]["baseline"]
            if base and base in by:
                row[m.key].update(compare(values, {c["seed"]: c["metrics"].get(m.key) for c in by[base]}, m))
        rows.append(row)
    return rows


def compare(values: Mapping[int, Any], base: Mapping[int, Any], metric: Metric) -> Dict[str, Any]:
    """Paired by seed, ``values - base``: ``diff``, ``diff_std``, ``t``, ``p``, ``d`` (d_z), ``n_pairs``, ``ratio``."""
    test = stats.paired_test(values, base)
    d = test["mean_diff"] / test["std_diff"] if _finite(test["std_diff"]) and test["std_diff"] else float("nan")
    vmean = stats.summarize(list(values.values()))["mean"]
    bmean = stats.summarize(list(base.values()))["mean"]
    return {"diff": test["mean_diff"], "pp": 100.0 * test["mean_diff"], "diff_std": test["std_diff"], "t": test["t"],
            "p": test["p"], "d": d,
            "n_pairs": test["n"],
            "ratio": stats.ratio(vmean, bmean, metric.ratio) if metric.ratio else float("nan")}


def fmt(value: Any, metric: Metric = None, kind: str = "value") -> str:
    """How the document shows a number (the test reads the digits back)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    v = float(value)
    if kind == "p":
        return f"{v:.3g}"
    if kind in ("d", "t"):
        return f"{v:.2f}"
    if kind == "ratio":
        return f"{100 * v:+.3f}%"
    if metric is not None and not metric.scientific:
        return f"{v:+.{DECIMALS}f}" if kind == "diff" else f"{v:.{DECIMALS}f}"
    return f"{v:+.3e}" if kind == "diff" else f"{v:.3e}"


def _param(v) -> str:
    return "" if v is None else f"{v:g}" if isinstance(v, float) else str(v)


def param_keys(rows: Sequence[Dict[str, Any]]) -> List[str]:
    """The settings' parameter names, ``method`` first, the rest in first-seen order: the setting columns of the
    values tables."""
    keys = list(dict.fromkeys(k for r in rows for k in r["params"]))
    return sorted(keys, key=lambda k: k != "method")


def tables(rows: Sequence[Dict[str, Any]], metrics: Sequence[Metric]) -> str:
    """The values tables (mean ± std over seeds; :data:`COLUMNS` metrics each) and the comparison table (each
    setting vs its baseline)."""
    params = param_keys(rows)
    out: List[str] = []
    for start in range(0, len(metrics), COLUMNS):
        chunk = metrics[start:start + COLUMNS]
        out += ["| setting | " + " | ".join(params) + " | seeds | " + " | ".join(m.label for m in chunk) + " |",
                "|---|" + "---|" * len(params) + "---|" + "---|" * len(chunk)]
        for r in rows:
            values = [f"{fmt(r[m.key]['mean'], m)} ± {fmt(r[m.key]['std'], m)}" for m in chunk]
            out.append(f"| {r['setting']} | " + "".join(f"{_param(r['params'].get(k))} | " for k in params)
                       + f"{len(r['seeds'])} | " + " | ".join(values) + " |")
        out.append("")
    out += ["| setting | vs | metric | diff (mean ± std over seeds) | d_z | t | p (paired t-test) | ratio |",
            "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if not r["baseline"]:
            continue
        for m in metrics:
            s = r[m.key]
            if not s.get("n_pairs"):  # no seed has the metric in both (HCCP's beta for a variant without margin)
                continue
            ratio = fmt(s["ratio"], m, "ratio") if m.ratio else ""
            out.append(f"| {r['setting']} | {r['baseline']} | {m.label} | {fmt(s['diff'], m, 'diff')} ± "
                       f"{fmt(s['diff_std'], m)} | {fmt(s['d'], m, 'd')} | {fmt(s['t'], m, 't')} | "
                       f"{fmt(s['p'], m, 'p')} | {ratio} |")
    return "\n".join(out) + "\n"


class _Lookup(dict):
    """``{key}`` lookups of a template that name a missing record are errors (never an empty number)."""

    def __missing__(self, key):
        raise KeyError(f"the reading names {key!r}, which the records do not have")


class _Versus(dict):
    """``versus[<a>|<b>/<metric>]``: :func:`compare` of setting ``a`` against setting ``b`` on ``metric``, for
    comparisons other than each setting's baseline (HCCP's ablations against full HCCP)."""

    def __init__(self, cells: Sequence[Dict[str, Any]], metrics: Mapping[str, Metric]):
        super().__init__()
        self.cells, self.metrics = cells, metrics

    def __missing__(self, key):
        pair, _, metric = key.rpartition("/")
        a, _, b = pair.partition("|")
        settings = {c["setting"] for c in self.cells}
        if a not in settings or b not in settings or metric not in self.metrics:
            raise KeyError(f"the reading names versus[{key}]; the records have settings {sorted(settings)} and "
                           f"metrics {sorted(self.metrics)}")
        of = lambda s: {c["seed"]: c["metrics"].get(metric) for c in self.cells if c["setting"] == s}  # noqa: E731
        self[key] = _Lookup(compare(of(a), of(b), self.metrics[metric]))
        return self[key]


def context(cells: Sequence[Dict[str, Any]], record: Dict[str, Any], metrics: Sequence[Metric]) -> Dict[str, Any]:
    """The names a reading template may use (:mod:`tfrec.experiments.core.results_doc`); ``metrics``: every
    metric the cells record."""
    rows = table_rows(cells, metrics)
    fields = ("mean", "std", "diff", "pp", "diff_std", "p", "d", "t", "ratio", "n")
    ctx: Dict[str, Any] = {k: _Lookup() for k in fields}
    for r in rows:
        for m in metrics:
            key = f"{r['setting']}/{m.key}"
            for field in fields:
                if field in r[m.key]:
                    ctx[field][key] = r[m.key][field]
    ctx["versus"] = _Versus(cells, {m.key: m for m in metrics})
    ctx["record"] = _Lookup(record)
    ctx["reference"] = _Lookup(record.get("reference") or {})
    ctx["load"] = _Lookup(record.get("host_load") or {})
    ctx["epochs"] = _Lookup({f"{c['setting']}/{c['seed']}": c["epochs_run"] for c in cells})
    ctx["params"] = _Lookup({f"{c['setting']}/{k}": v for c in cells for k, v in c["params"].items()})
    train = [c["train_seconds"] for c in cells]
    epochs, best = flat(c["epochs_run"] for c in cells), flat(c["best_epoch"] for c in cells)
    ctx["cells"] = _Lookup({"count": len(cells), "train_minutes_mean": sum(train) / len(train) / 60,
                            "train_minutes_max": max(train) / 60, "epochs_min": min(epochs), "epochs_max": max(epochs),
                            "best_epoch_min": min(best), "best_epoch_max": max(best),
                            # models trained per cell (PWiseR's single-task cell: 2)
                            "models_max": max(len(c["epochs_run"]) if isinstance(c["epochs_run"], list) else 1
                                              for c in cells)})
    return ctx
