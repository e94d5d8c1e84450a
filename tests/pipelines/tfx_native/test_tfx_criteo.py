"""The Criteo family's TFX pipeline under LocalDagRunner, as `tfrec pipeline run --engine tfx` runs it: a pushed
model that the local PredictionService serves equal to the in-process model; a rerun with nothing changed fully
cached in ml-metadata; a worse model not blessed and nothing pushed; drifted data stopped at validation."""

from __future__ import annotations

import contextlib
import io
import os

import pytest

pytest.importorskip("tfx", reason="TFX is not installed (the tfx extra: pip install --ignore-requires-python "
                                  "-c constraints-tfx.txt -e '.[tfx]'); in a TFX virtualenv: "
                                  "pytest tests/pipelines/tfx_native")

from tests.pipelines.tfx_native.tfx_helpers import (assert_served_equals_in_process, output_uri,  # noqa: E402
                                                    split_records, write_config)

from export.versions import list_versions  # noqa: E402
from pipelines.tfx import load_pipeline_config  # noqa: E402
from pipelines.tfx.components import ComponentError  # noqa: E402
from pipelines.tfx_native.pipeline import POINTWISE_NODES, run, summary  # noqa: E402
from tfrec.config import ConfigError, SimulationConfig  # noqa: E402
from tfrec.simulation import simulate  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROWS = 5000


def _simulate(path, positive_rate, seed):
    simulate(SimulationConfig(rows=ROWS, positive_rate=positive_rate, seed=seed, vocab_scale=0.005, output=path))
    return path


def _config(work, raw, name="pipeline.yaml", **extra):
    settings = {"pipeline": {"name": "criteo_tfx", "root": os.path.join(work, "root"),
                             "serving_base_path": os.path.join(work, "serving")},
                "evaluator": {"min_auc": 0.0},
                "prepare": {"inputs": [raw], "beta_pos": 1.0, "min_count": 2, "num_shards": 1},
                "train": {"epochs": 2}}
    for section, values in extra.items():
        settings.setdefault(section, {}).update(values)
    return write_config(os.path.join(work, name), settings, base="pipeline_criteo.yaml")


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """The first run, through the command line: `tfrec pipeline run --engine tfx --config ...`."""
    from tfrec.cli import main

    work = str(tmp_path_factory.mktemp("tfx_criteo"))
    raw = _simulate(os.path.join(work, "raw", "train.txt"), 0.256, seed=7)
    path = _config(work, raw)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["pipeline", "run", "--engine", "tfx", "--config", path])
    assert code == 0, out.getvalue()
    return {"work": work, "raw": raw, "config": path, "stdout": out.getvalue(), "cfg": load_pipeline_config(path)}


def test_the_run_pushes_a_model_the_prediction_service_serves_as_in_process(base):
    cfg = base["cfg"]
    result = summary(cfg)
    assert result.states == {node: "COMPLETE" for node in POINTWISE_NODES}
    assert result.pushed and result.blessing["blessed"] and result.blessing["metrics"]["auc"] > 0.55
    serving = cfg.pipeline.serving_base_path
    assert list_versions(serving) == [int(result.pushed_version)]
    assert f"pushed version {result.pushed_version}" in base["stdout"]
    model = os.path.join(output_uri(cfg, "Trainer", "model"), "Format-Serving")
    records = split_records(output_uri(cfg, "TfrecExampleGen", "examples"), "test", 16)
    got = assert_served_equals_in_process(serving, result.pushed_version, model, {"examples": records},
                                          "serving_default", ("ctr", "ctr_logit"))
    assert got["ctr"].shape == (16,)
    # tfrec's side files travel in the Examples artifact, beside TFX's Split-<name>/ directories.
    examples = output_uri(cfg, "TfrecExampleGen", "examples")
    assert {"schema.json", "stats.json", "transform.json", "vocab", "Split-train", "Split-valid",
            "Split-test"} <= set(os.listdir(examples))


def test_a_rerun_with_nothing_changed_is_fully_cached(base):
    cfg = load_pipeline_config(base["config"])
    before = list_versions(cfg.pipeline.serving_base_path)
    result = run(cfg)
    assert result.states == {node: "CACHED" for node in POINTWISE_NODES}
    assert list_versions(cfg.pipeline.serving_base_path) == before


def test_a_worse_model_is_not_blessed_and_nothing_is_pushed(base):
    path = _config(base["work"], base["raw"], "worse.yaml",
                   pipeline={"trainer_module": os.path.join(HERE, "constant_module.py")})
    cfg = load_pipeline_config(path)
    before = list_versions(cfg.pipeline.serving_base_path)
    result = run(cfg)
    assert [n for n, s in result.states.items() if s == "CACHED"] == list(POINTWISE_NODES[:5])
    assert result.states["Trainer"] == result.states["TfrecEvaluator"] == "COMPLETE"
    assert not result.blessing["blessed"] and abs(result.blessing["metrics"]["auc"] - 0.5) < 1e-9
    assert "below the blessed model's" in result.blessing["reasons"], result.blessing
    assert not result.pushed and list_versions(cfg.pipeline.serving_base_path) == before


def test_drifted_data_stops_at_validation_with_the_anomaly_named(base):
    drifted = _simulate(os.path.join(base["work"], "raw", "drifted.txt"), 0.6, seed=8)
    cfg = load_pipeline_config(_config(base["work"], drifted, "drifted.yaml"))
    before = list_versions(cfg.pipeline.serving_base_path)
    with pytest.raises(ComponentError, match=r"\[drift\] drift of label: Jensen-Shannon divergence .* > .*"
                                             r"train rate 0\.\d+ against 0\.2\d+ of the last validated data"):
        run(cfg)
    states = summary(cfg).states
    assert states["TfrecExampleGen"] == "COMPLETE" and states["ValidationGate"] == "FAILED"
    assert "Trainer" not in states and list_versions(cfg.pipeline.serving_base_path) == before


def test_the_pipeline_compiles_for_kubeflow_pipelines_v2_with_every_component(tmp_path):
    import json

    from pipelines.tfx_native.pipeline import compile_kfp

    raw = tmp_path / "raw.txt"
    raw.write_text("0\t1\n")  # ExampleGen's input fingerprint reads the files' sizes and times; nothing runs
    with pytest.raises(ConfigError, match=r"pipeline.name 'criteo_tfx' is not a Kubeflow Pipelines name"):
        compile_kfp(load_pipeline_config(_config(str(tmp_path), str(raw))), str(tmp_path / "x.json"))
    cfg = load_pipeline_config(_config(str(tmp_path), str(raw), "kfp.yaml", pipeline={"name": "criteo-tfx"}))
    out = compile_kfp(cfg, str(tmp_path / "kfp" / "pipeline.json"))
    with open(out) as f:
        spec = json.load(f)
    assert spec["displayName"] == "criteo-tfx"
    assert set(spec["pipelineSpec"]["root"]["dag"]["tasks"]) == set(POINTWISE_NODES)
    executors = spec["pipelineSpec"]["deploymentSpec"]["executors"]
    assert {e["container"]["image"] for e in executors.values()} == {"tensorflow/tfx:1.15.1"}
