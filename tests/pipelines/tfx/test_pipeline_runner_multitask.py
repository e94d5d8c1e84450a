"""The multi-task family in the pipeline runner: ExampleGen (pipelines/multitask) -> StatisticsGen (both labels)
-> SchemaGen -> ExampleValidator on tiny AliExpress files, and the Evaluator's task / label defaults."""

from __future__ import annotations

import os

import pytest
import tensorflow as tf

from export import warmup
from tests.support.multitask_files import ALIEXPRESS_HEADER, aliexpress_lines, write
from pipelines.tfx.components import ComponentError, Context, read_json
from pipelines.tfx.components import evaluator, example_gen, example_validator, schema_gen, statistics_gen
from pipelines.tfx.config import load_pipeline_config
from tfrec.data import load_schema
from tests.support import ROOT

CONFIG = os.path.join(ROOT, "configs", "pipeline_aliexpress.yaml")


def _execute(module, cfg, root, inputs):
    out = os.path.join(root, module.NAME, "run1")
    os.makedirs(out, exist_ok=True)
    ctx = Context(root=root, output_dir=out, run_id="run1", cfg=cfg, printer=lambda _: None)
    return module.execute(ctx, inputs, module.parameters(cfg))


def test_aliexpress_example_gen_statistics_schema_validator(tmp_path):
    good, bad = aliexpress_lines()  # good: 5 rows, 3 clicks, 2 conversions
    paths = {s: write(tmp_path / f"{s}.csv", good + (bad["bad_label"] if s == "train" else []), ALIEXPRESS_HEADER)
             for s in ("train", "valid", "test")}
    root = str(tmp_path / "root")
    cfg = load_pipeline_config(CONFIG, [f"pipeline.root={root}", "prepare.inputs=[]", "prepare.min_count=1",
                                        "prepare.num_shards=1", *(f"prepare.{s}=[{p}]" for s, p in paths.items())])
    examples = _execute(example_gen, cfg, root, {})["examples"]
    assert examples.properties["family"] == "multitask"
    assert examples.properties["rows_written"] == {"train": 5, "valid": 5, "test": 5}
    assert examples.properties["rows_rejected"] == 2

    # The Trainer's export reads warm-up records from this dataset: both labels and the weight are dropped.
    data_dir = examples.path(root)
    warm = [tf.train.Example.FromString(r) for r in warmup.dataset_examples(data_dir, load_schema(data_dir), 3)]
    assert len(warm) == 3 and all({"click", "conversion", "weight"}.isdisjoint(e.features.feature) for e in warm)
    assert all("categorical_1" in e.features.feature for e in warm)

    statistics = _execute(statistics_gen, cfg, root, {"examples": examples})["statistics"]
    stats = read_json(os.path.join(statistics.path(root), "statistics.json"))
    for split in ("train", "valid", "test"):
        s = stats[split]
        assert s["rows"] == 5
        assert s["labels"]["click"] == {"positives": 3.0, "positive_rate": 0.6}
        assert s["labels"]["conversion"] == {"positives": 2.0, "positive_rate": 0.4}
        assert s["positive_rate"] == 0.6  # the main label: click
        assert "click" not in s["features"] and "conversion" not in s["features"]
        assert "categorical_1" in s["features"] and "numerical_1" in s["features"]

    schema = _execute(schema_gen, cfg, root, {"statistics": statistics})["schema"]
    inferred = read_json(os.path.join(schema.path(root), "schema.json"))
    assert inferred["label_rates"] == {"click": 0.6, "conversion": 0.4}
    anomalies = _execute(example_validator, cfg, root,
                         {"statistics": statistics, "schema": schema, "examples": examples})["anomalies"]
    assert anomalies.properties["count"] == 0

    # The conversion rate drifts (0.4 -> 0.2) while the click rate stays: only the conversion label is flagged.
    stats["train"]["labels"]["conversion"] = {"positives": 1.0, "positive_rate": 0.2}
    found = example_validator.find_anomalies(stats, inferred, example_validator.parameters(cfg),
                                             example_validator.data_counter(examples.path(root)))
    assert [(a["kind"], a.get("label")) for a in found] == [("positive_rate_drift", "conversion")]


def test_evaluator_defaults_to_the_ctr_auc_and_takes_a_configured_task(tmp_path):
    sets = [f"pipeline.root={tmp_path}"]
    cfg = load_pipeline_config(CONFIG, sets)
    assert (evaluator.parameters(cfg)["task"], evaluator.parameters(cfg)["label"]) == ("ctr", "click")
    cfg = load_pipeline_config(CONFIG, sets + ["evaluator.task=ctcvr"])
    assert evaluator.parameters(cfg)["label"] == "conversion"
    cfg = load_pipeline_config(CONFIG, sets + ["evaluator.task=cvr"])
    with pytest.raises(ComponentError, match="evaluator.task 'cvr' has no default label"):
        evaluator.parameters(cfg)
    cfg = load_pipeline_config(CONFIG, sets + ["evaluator.task=cvr", "evaluator.label=conversion"])
    assert evaluator.parameters(cfg)["label"] == "conversion"
    criteo = load_pipeline_config(os.path.join(os.path.dirname(CONFIG), "pipeline_criteo.yaml"), sets)
    assert (evaluator.parameters(criteo)["task"], evaluator.parameters(criteo)["label"]) == ("ctr", "label")
