"""SchemaGen: the schema inferred from the train split's statistics.

``schema.json``: ``{"positive_rate": p, "label_rates": {label: p}, "features": {name: {"kind", "presence", "min",
"max"}}}`` (``positive_rate``: the main label's; ``label_rates``: every label's; ``min`` /
``max`` for numeric features: the train split's range; ``level``: ``context`` or ``item`` for list-wise records).
ExampleValidator checks later data against it.
"""

from __future__ import annotations

import os

from pipelines.tfx.artifacts import Schema
from pipelines.tfx.components import read_json, write_json

NAME = "schema_gen"
INPUTS = ("statistics",)


def parameters(cfg):
    return {"split": "train"}


def infer_schema(train_stats) -> dict:
    """A schema from one split's statistics (see the module docstring)."""
    features = {}
    for name, f in train_stats["features"].items():
        entry = {"kind": f["kind"], "presence": f["presence"]}
        if "level" in f:  # list-wise records: a context (per list) or an item (per item) feature
            entry["level"] = f["level"]
        if "percentiles" in f:
            entry["min"], entry["max"] = f["percentiles"][0], f["percentiles"][-1]
        features[name] = entry
    label_rates = {k: v["positive_rate"] for k, v in train_stats.get("labels", {}).items()}
    return {"positive_rate": train_stats["positive_rate"], "label_rates": label_rates, "features": features}


def execute(ctx, inputs, params):
    stats = read_json(os.path.join(inputs["statistics"].path(ctx.root), "statistics.json"))
    schema = infer_schema(stats[params["split"]])
    write_json(os.path.join(ctx.output_dir, "schema.json"), schema)
    return {"schema": Schema(uri=ctx.relative(ctx.output_dir), properties={"features": len(schema["features"])})}
