"""The shipped pipeline configs pass ExampleValidator on the data their own header comment tells a user to
simulate: ExampleGen -> StatisticsGen -> SchemaGen -> ExampleValidator of each ``configs/pipeline_*.yaml``, on the
simulator command of the config's "Simulate ... first:" line, at a smaller size (rows / requests). The values of a
valid or test split that fall outside the train split's range are a tiny fraction (about 2 / train size), far under
``validator.max_out_of_range_fraction``, so a run on fresh simulator data has no anomaly."""

from __future__ import annotations

import glob
import os
import re
import shlex

import pytest

from pipelines.tfx import load_pipeline_config
from pipelines.tfx.components import Context, example_gen, example_validator, read_json, schema_gen, statistics_gen
from pipelines.tfx.runner import WIRING
from tfrec.cli import main
from tests.support import ROOT

CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "pipeline_*.yaml")))
#: The simulator's size flag and the size used here (the documented sizes are 200,000 rows and 4,000 requests).
SIZES = {"--rows": "20000", "--requests": "600"}


def simulate_command(config_path: str):
    """The ``tfrec ...`` arguments of the config's "# Simulate data first:" (or "logs") comment, made smaller."""
    with open(config_path, encoding="utf-8") as f:
        lines = [m.group(1) for m in (re.match(r"#\s*Simulate \w+ first:\s*(tfrec .*)$", line.strip()) for line in f)
                 if m]
    assert len(lines) == 1, f"{config_path} has no single '# Simulate ... first: tfrec ...' line"
    args = shlex.split(lines[0])[1:]
    for i, arg in enumerate(args[:-1]):
        if arg in SIZES:
            args[i + 1] = SIZES[arg]
    return args


def validate_only(cfg, root: str):
    """Runs ExampleGen, StatisticsGen, SchemaGen and ExampleValidator as the runner wires them (this run's own
    schema as the reference: a first run); returns the outputs."""
    outputs = {}
    for module in (example_gen, statistics_gen, schema_gen, example_validator):
        inputs = {k: outputs[c][o] for k, (c, o) in WIRING.get(module.NAME, {}).items()}
        if module.NAME == "example_validator":
            inputs["schema"] = outputs["schema_gen"]["schema"]
        out_dir = os.path.join(root, module.NAME, "run")
        os.makedirs(out_dir)
        ctx = Context(root=root, output_dir=out_dir, run_id="run", cfg=cfg)
        outputs[module.NAME] = module.execute(ctx, inputs, module.parameters(cfg))
    return outputs


def test_every_shipped_config_has_a_simulate_line():
    assert [os.path.basename(c) for c in CONFIGS] == ["pipeline_aliexpress.yaml", "pipeline_criteo.yaml",
                                                      "pipeline_hccp.yaml"]
    for config in CONFIGS:
        assert simulate_command(config)[0] in ("simulate", "simulate-cascade")


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: os.path.basename(c))
def test_shipped_config_passes_validation_on_the_documented_simulator_data(config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the configs' input paths are relative (data/raw/...)
    assert main(simulate_command(config)) == 0
    cfg = load_pipeline_config(config, [f"pipeline.root={tmp_path / 'root'}"])
    outputs = validate_only(cfg, str(tmp_path / "root"))
    anomalies = read_json(os.path.join(outputs["example_validator"]["anomalies"].path(str(tmp_path / "root")),
                                       "anomalies.json"))
    assert anomalies == []
    if os.path.basename(config) == "pipeline_hccp.yaml":
        return  # train lists hold pool items (N5) drawn from the whole item table: price stays inside its range
    # The check did run: some feature of valid or test reaches outside the train range and was counted.
    stats = read_json(os.path.join(outputs["statistics_gen"]["statistics"].path(str(tmp_path / "root")),
                                   "statistics.json"))
    schema = read_json(os.path.join(outputs["schema_gen"]["schema"].path(str(tmp_path / "root")), "schema.json"))
    reaching = [(s, n) for s in ("valid", "test") for n, f in stats[s]["features"].items()
                if "percentiles" in f and "min" in schema["features"].get(n, {})
                and (f["percentiles"][0] < schema["features"][n]["min"]
                     or f["percentiles"][-1] > schema["features"][n]["max"])]
    assert reaching, "no feature reaches outside the schema range: the out-of-range count was not exercised"
