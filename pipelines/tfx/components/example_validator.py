"""ExampleValidator: the new data's statistics against a reference schema; anomalies stop the run.

Anomalies (each a line of ``anomalies.txt`` and an entry of ``anomalies.json``):

* ``missing_feature``: a schema feature whose presence in a split fell below ``min_presence_ratio`` x the
  schema's presence (of rows; of lists or of items for the context and item features of list-wise records);
* ``new_feature``: a feature the schema does not know;
* ``out_of_range``: more than ``max_out_of_range_fraction`` of a numeric feature's values outside the schema's
  ``[min, max]``. The fraction is counted exactly on the split's records (``outside / values``, every value of a
  multi-valued feature counted), for the features whose percentile range (the split's min and max) reaches
  outside the schema's; the percentiles alone cannot tell 2 values from 1%.
* ``positive_rate_drift``: ``|p - p_ref| / p_ref > positive_rate_drift`` on the train split, for each label of
  the schema (``label_rates``; the main label's ``positive_rate`` for a schema without them). For list-wise
  records the rates are those of the impressions (the click rate of impressions, ...).

The reference schema is ``validator.schema_path`` when given, else the schema of the last complete run of the
pipeline, else this run's own (so the first run checks only that the data is not empty). With anomalies the
component fails with the report, unless ``validator.allow_anomalies`` is set; then the report says that the run
goes on.
"""

from __future__ import annotations

import dataclasses
import glob
import os
from typing import Callable, Dict, List, Optional, Tuple

from pipelines.tfx.artifacts import ExampleAnomalies
from pipelines.tfx.components import ComponentError, read_json, write_json
from pipelines.tfx.components.example_gen import family

NAME = "example_validator"
INPUTS = ("statistics", "schema", "examples")

#: ``count_outside(split, {feature: (lo, hi)}) -> {feature: (values outside, values)}``, exact, on the split's data.
OutsideCounter = Callable[[str, Dict[str, Tuple[float, float]]], Dict[str, Tuple[int, int]]]


def parameters(cfg):
    from tfrec.families import EXAMPLE_LIST

    params = dataclasses.asdict(cfg.validator)
    if family(cfg).records == EXAMPLE_LIST:
        params["records"] = EXAMPLE_LIST
    return params


def data_counter(data_dir: str, listwise: bool = False) -> OutsideCounter:
    """The exact :data:`OutsideCounter` of a prepared dataset (``<split>-*.tfrecord.gz`` in ``data_dir``)."""

    def count(split, ranges):
        files = sorted(glob.glob(os.path.join(data_dir, f"{split}-*.tfrecord.gz")))
        if listwise:
            from pipelines.tfx.components import listwise_stats
            from tfrec.train_preranking import load_listwise_schema

            return listwise_stats.count_outside(files, load_listwise_schema(data_dir), ranges)
        from pipelines.tfx.components.statistics_gen import count_outside

        return count_outside(files, ranges)

    return count


def find_anomalies(stats: Dict, schema: Dict, params: Dict,
                   count_outside: Optional[OutsideCounter] = None) -> List[Dict]:
    """The anomalies of ``stats`` (all splits) against ``schema``; see the module docstring.

    ``count_outside`` counts out-of-range values exactly on the data (:func:`data_counter`); it is called only for
    the features whose percentile range reaches outside the schema's range.

    Raises:
      ValueError: a feature may be out of range and there is no ``count_outside`` to count it.
    """
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
        out += _out_of_range(split, s, ref, params["max_out_of_range_fraction"], count_outside)
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


def _out_of_range(split: str, s: Dict, ref: Dict, allowed: float,
                  count_outside: Optional[OutsideCounter]) -> List[Dict]:
    """The ``out_of_range`` anomalies of one split's statistics ``s`` against the schema's features ``ref``."""
    ranges = {}
    for name, f in s["features"].items():
        r = ref.get(name)
        if r is None or "percentiles" not in f or "min" not in r or not f["percentiles"]:
            continue
        # The 0th and 100th percentiles are the split's min and max: inside the range, no value is outside.
        if f["percentiles"][0] < r["min"] or f["percentiles"][-1] > r["max"]:
            ranges[name] = (r["min"], r["max"])
    if not ranges:
        return []
    if count_outside is None:
        raise ValueError(f"features {sorted(ranges)} of {split} reach outside the schema range; counting them needs "
                         "the data (count_outside)")
    out = []
    for name, (outside, values) in sorted(count_outside(split, ranges).items()):
        frac = outside / values if values else 0.0
        if frac > allowed:
            lo, hi = ranges[name]
            out.append({"kind": "out_of_range", "split": split, "feature": name, "fraction": frac,
                        "outside": outside, "values": values,
                        "message": f"{frac:.2%} of {name} values in {split} ({outside:,} of {values:,}) are outside "
                                   f"the schema range [{lo:g}, {hi:g}] (validator.max_out_of_range_fraction "
                                   f"{allowed:g})"})
    return out


def report(anomalies: List[Dict], schema_uri: str, allowed: bool = False) -> str:
    """The text of ``anomalies.txt``; ``allowed``: ``validator.allow_anomalies`` is set and the run goes on."""
    lines = [f"{len(anomalies)} data anomal{'y' if len(anomalies) == 1 else 'ies'} against the schema {schema_uri}:"]
    lines += [f"  - [{a['kind']}] {a['message']}" for a in anomalies]
    lines.append("validator.allow_anomalies=true: training anyway" if allowed else
                 "set validator.allow_anomalies=true to train anyway, or give a curated validator.schema_path")
    return "\n".join(lines)


def execute(ctx, inputs, params):
    stats = read_json(os.path.join(inputs["statistics"].path(ctx.root), "statistics.json"))
    schema_path = params["schema_path"] or os.path.join(inputs["schema"].path(ctx.root), "schema.json")
    counter = data_counter(inputs["examples"].path(ctx.root), params.get("records") == "ExampleListWithContext")
    anomalies = find_anomalies(stats, read_json(schema_path), params, counter)
    write_json(os.path.join(ctx.output_dir, "anomalies.json"), anomalies)
    text = report(anomalies, schema_path, bool(params["allow_anomalies"])) if anomalies else "no anomalies"
    with open(os.path.join(ctx.output_dir, "anomalies.txt"), "w", encoding="utf-8") as f:
        f.write(text + "\n")
    if anomalies and not params["allow_anomalies"]:
        raise ComponentError(text + f"\n(report: {os.path.join(ctx.output_dir, 'anomalies.txt')})")
    if anomalies:
        ctx.printer("      " + text.replace("\n", "\n      "))
    return {"anomalies": ExampleAnomalies(uri=ctx.relative(ctx.output_dir),
                                          properties={"count": len(anomalies),
                                                      "kinds": sorted({a["kind"] for a in anomalies})})}
