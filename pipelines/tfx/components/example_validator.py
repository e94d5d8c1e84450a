"""ExampleValidator: the new data's statistics against a reference schema; anomalies stop the run.

Anomalies (each a line of ``anomalies.txt`` and an entry of ``anomalies.json``):

* ``missing_feature``: a schema feature whose presence in a split fell below ``min_presence_ratio`` x the
  schema's presence (of rows; of lists or of items for the context and item features of list-wise records);
* ``new_feature``: a feature the schema does not know;
* ``out_of_range``: more than ``max_out_of_range_fraction`` of a numeric feature's values outside the schema's
  ``[min, max]`` (estimated from the split's percentiles, so to 1%);
* ``positive_rate_drift``: ``|p - p_ref| / p_ref > positive_rate_drift`` on the train split, for each label of
  the schema (``label_rates``; the main label's ``positive_rate`` for a schema without them). For list-wise
  records the rates are those of the impressions (the click rate of impressions, ...).

The reference schema is ``validator.schema_path`` when given, else the schema of the last complete run of the
pipeline, else this run's own (so the first run checks only that the data is not empty). With anomalies the
component fails with the report, unless ``validator.allow_anomalies`` is set.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Dict, List

import numpy as np

from pipelines.tfx.artifacts import ExampleAnomalies
from pipelines.tfx.components import ComponentError, read_json, write_json

NAME = "example_validator"
INPUTS = ("statistics", "schema")


def parameters(cfg):
    return dataclasses.asdict(cfg.validator)


def _outside(percentiles, lo, hi) -> float:
    p = np.asarray(percentiles)
    # Percentile points 0..100 are 1% apart: k points below ``lo`` (above ``hi``) mean about k% of the values.
    below = float(np.searchsorted(p, lo, side="left")) / 100.0
    above = float(len(p) - np.searchsorted(p, hi, side="right")) / 100.0
    return below + above


def find_anomalies(stats: Dict, schema: Dict, params: Dict) -> List[Dict]:
    """The anomalies of ``stats`` (all splits) against ``schema``; see the module docstring."""
    out = []
    ref = schema["features"]
    for split, s in stats.items():
        if not s["rows"]:
            if split == "train":
                out.append({"kind": "empty_split", "split": split, "message": "the train split has no rows"})
            continue
        for name, f in ref.items():
            have = s["features"].get(name, {}).get("presence", 0.0)
            if f["presence"] > 0 and have < params["min_presence_ratio"] * f["presence"]:
                unit = {"context": "lists", "item": "items"}.get(f.get("level"), "rows")
                out.append({"kind": "missing_feature", "split": split, "feature": name,
                            "message": f"feature {name} is present in {have:.1%} of {split} {unit}, "
                                       f"the schema expects {f['presence']:.1%}"})
        for name in sorted(set(s["features"]) - set(ref)):
            out.append({"kind": "new_feature", "split": split, "feature": name,
                        "message": f"feature {name} in {split} is not in the schema"})
        for name, f in s["features"].items():
            r = ref.get(name)
            if r is None or "percentiles" not in f or "min" not in r:
                continue
            frac = _outside(f["percentiles"], r["min"], r["max"])
            if frac > params["max_out_of_range_fraction"]:
                out.append({"kind": "out_of_range", "split": split, "feature": name, "fraction": frac,
                            "message": f"about {frac:.0%} of {name} values in {split} are outside the schema "
                                       f"range [{r['min']:g}, {r['max']:g}]"})
    train = stats.get("train", {})
    refs = schema.get("label_rates") or {None: schema.get("positive_rate")}
    for label, p_ref in refs.items():
        p = train.get("positive_rate") if label is None else train.get("labels", {}).get(label, {}).get("positive_rate")
        if p_ref and p is not None and abs(p - p_ref) / p_ref > params["positive_rate_drift"]:
            what = "positive rate" if label is None else f"{label} rate"
            out.append({"kind": "positive_rate_drift", "split": "train", "value": p, "reference": p_ref,
                        **({} if label is None else {"label": label}),
                        "message": f"train {what} {p:.4f} differs from the schema's {p_ref:.4f} by "
                                   f"{abs(p - p_ref) / p_ref:.0%} (threshold {params['positive_rate_drift']:.0%})"})
    return out


def report(anomalies: List[Dict], schema_uri: str) -> str:
    lines = [f"{len(anomalies)} data anomal{'y' if len(anomalies) == 1 else 'ies'} against the schema {schema_uri}:"]
    lines += [f"  - [{a['kind']}] {a['message']}" for a in anomalies]
    lines.append("set validator.allow_anomalies=true to train anyway, or give a curated validator.schema_path")
    return "\n".join(lines)


def execute(ctx, inputs, params):
    stats = read_json(os.path.join(inputs["statistics"].path(ctx.root), "statistics.json"))
    schema_path = params["schema_path"] or os.path.join(inputs["schema"].path(ctx.root), "schema.json")
    anomalies = find_anomalies(stats, read_json(schema_path), params)
    write_json(os.path.join(ctx.output_dir, "anomalies.json"), anomalies)
    text = report(anomalies, schema_path) if anomalies else "no anomalies"
    with open(os.path.join(ctx.output_dir, "anomalies.txt"), "w", encoding="utf-8") as f:
        f.write(text + "\n")
    if anomalies and not params["allow_anomalies"]:
        raise ComponentError(text + f"\n(report: {os.path.join(ctx.output_dir, 'anomalies.txt')})")
    if anomalies:
        ctx.printer("      " + text.replace("\n", "\n      "))
    return {"anomalies": ExampleAnomalies(uri=ctx.relative(ctx.output_dir),
                                          properties={"count": len(anomalies),
                                                      "kinds": sorted({a["kind"] for a in anomalies})})}
