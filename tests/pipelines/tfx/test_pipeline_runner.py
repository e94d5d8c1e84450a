"""The pipeline runner end to end on simulated data: push and serve, caching, resume, blessing, validation."""

from __future__ import annotations

import glob
import json
import os
import shutil
import sqlite3
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import yaml

from export.versions import list_versions
from pipelines.tfx import PipelineError, load_pipeline_config, run_pipeline
from pipelines.tfx.components import ORDER
from tfrec.config import SimulationConfig
from tfrec.simulation import simulate
from tests.support import ROOT

HERE = os.path.dirname(os.path.abspath(__file__))
ROWS = 5000
#: Small vocabularies: frequent tokens, so the tiny model learns something from a few thousand rows.
VOCAB_SCALE = 0.005
SETTINGS = {
    "pipeline": {"name": "test"},
    "prepare": {"beta_pos": 1.0, "min_count": 2, "num_shards": 1},
    "data": {"batch_size": 128, "eval_batch_size": 1024, "shuffle_buffer": 1000},
    "model": {"dnn_hidden_units": [8], "num_cross_layers": 1, "embedding_dim": 2, "dropout": 0.0},
    "train": {"epochs": 4, "learning_rate": 0.01, "replicas": 1, "save_every_steps": 2, "log_every_seconds": 0, "early_stop_patience": 5},
}


def _write_config(path, root, serving, raw, extra=None):
    cfg = json.loads(json.dumps(SETTINGS))
    cfg["pipeline"].update(root=root, serving_base_path=serving)
    cfg["prepare"]["inputs"] = [raw]
    for section, values in (extra or {}).items():
        cfg.setdefault(section, {}).update(values)
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f)
    return path


def _simulate(path, positive_rate=0.256, seed=7):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    simulate(SimulationConfig(rows=ROWS, positive_rate=positive_rate, seed=seed, vocab_scale=VOCAB_SCALE,
                              output=path))
    return path


@pytest.fixture(scope="session")
def base(tmp_path_factory):
    """One complete run: its work directory, config path, raw input and result."""
    work = str(tmp_path_factory.mktemp("pipeline"))
    raw = _simulate(os.path.join(work, "raw", "train.txt"))
    path = _write_config(os.path.join(work, "pipeline.yaml"), os.path.join(work, "root"),
                         os.path.join(work, "serving", "ctr"), raw)
    result = run_pipeline(load_pipeline_config(path))
    return {"work": work, "config": path, "raw": raw, "result": result,
            "serving": os.path.join(work, "serving", "ctr")}


def _fork(base, tmp_path, extra=None):
    """A copy of the base pipeline root (artifact URIs are root-relative) with its own config and serving path."""
    root, serving = str(tmp_path / "root"), str(tmp_path / "serving" / "ctr")
    shutil.copytree(os.path.join(base["work"], "root"), root)
    shutil.copytree(base["serving"], serving)
    # The Pusher's parameters name the serving path, so a fork's Pusher runs once; nothing upstream does.
    return _write_config(str(tmp_path / "pipeline.yaml"), root, serving, base["raw"], extra), root, serving


def _test_records(root, result, n=8):
    data = result.outputs["example_gen"]["examples"].path(root)
    files = sorted(glob.glob(os.path.join(data, "test-*.tfrecord.gz")))
    return [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP").take(n)]


def test_end_to_end_run_pushes_a_version_the_prediction_service_serves(base):
    from serving.client import PredictionClient
    from serving.manager import ModelSource
    from serving.server import ModelServer

    result = base["result"]
    assert result.executed == list(ORDER) and result.cached == []
    pushed = result.outputs["pusher"]["pushed_model"].properties
    assert pushed["pushed"] and pushed["version"] in list_versions(base["serving"])
    # The run record: inputs, outputs, parameters, package versions, times, status.
    db = sqlite3.connect(os.path.join(result.root, "metadata.sqlite"))
    status, versions, start, end = db.execute("SELECT status, package_versions, start_time, end_time FROM runs "
                                              "WHERE run_id = ?", (result.run_id,)).fetchone()
    assert status == "COMPLETE" and "tensorflow" in json.loads(versions) and end >= start
    rows = db.execute("SELECT component, status, inputs, outputs, parameters FROM executions WHERE run_id = ? "
                      "ORDER BY id", (result.run_id,)).fetchall()
    assert [r[0] for r in rows] == list(ORDER) and {r[1] for r in rows} == {"COMPLETE"}
    assert "examples" in json.loads(rows[1][2]) and "model" in json.loads(rows[4][3])
    # Artifacts live under <root>/<component>/<run id>/.
    for name, outs in result.outputs.items():
        for artifact in outs.values():
            assert artifact.uri.split(os.sep)[:2] == [name, result.run_id]

    records = _test_records(result.root, result)
    local = tf.saved_model.load(os.path.join(base["serving"], str(pushed["version"])))
    expected = local.signatures["serving_default"](examples=tf.constant(records))["ctr"].numpy().reshape(-1)
    with ModelServer([ModelSource("ctr", base["serving"])], port=0, poll_seconds=0.2) as server:
        with PredictionClient(server.address, timeout=30.0) as client:
            got = client.predict_examples("ctr", records)["ctr"].reshape(-1)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    assert np.all((got > 0) & (got < 1))


def test_rerun_unchanged_executes_nothing_and_a_changed_parameter_reruns_downstream(base):
    again = run_pipeline(load_pipeline_config(base["config"]))
    assert again.executed == [] and again.cached == list(ORDER)
    assert again.run_id != base["result"].run_id
    changed = run_pipeline(load_pipeline_config(base["config"], ["evaluator.max_auc_drop=0.05"]))
    assert changed.executed == ["evaluator", "pusher"]
    assert changed.cached == ["example_gen", "statistics_gen", "schema_gen", "example_validator", "trainer"]


def test_evaluator_refuses_a_worse_model_and_the_pusher_pushes_nothing(base, tmp_path):
    path, root, serving = _fork(base, tmp_path, {"pipeline": {
        "trainer_module": os.path.join(HERE, "pipeline_constant_module.py")}})
    before = list_versions(serving)
    result = run_pipeline(load_pipeline_config(path))
    assert "trainer" in result.executed and "example_gen" in result.cached
    blessing = result.outputs["evaluator"]["blessing"].properties
    assert blessing["blessed"] is False and abs(blessing["metrics"]["auc"] - 0.5) < 1e-9
    assert base["result"].outputs["evaluator"]["blessing"].properties["metrics"]["auc"] > 0.5
    assert any("blessed model" in r for r in blessing["reasons"]), blessing["reasons"]
    assert os.path.exists(os.path.join(result.outputs["evaluator"]["blessing"].path(root), "NOT_BLESSED"))
    assert result.outputs["pusher"]["pushed_model"].properties["pushed"] is False
    assert list_versions(serving) == before


def test_killed_trainer_resumes_with_resume(base, tmp_path):
    user = {"kill_at_step": 5, "marker": str(tmp_path / "killed"), "record": str(tmp_path / "starts.json")}
    # max_auc_drop 1: the resumed model is blessed whatever its AUC, so the run ends with a push.
    path, root, serving = _fork(base, tmp_path, {"pipeline": {
        "trainer_module": os.path.join(HERE, "pipeline_kill_module.py"), "custom_config": user},
        "evaluator": {"max_auc_drop": 1.0}})
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    killed = subprocess.run([sys.executable, "-m", "tfrec.cli", "pipeline", "run", "--config", path],
                            capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
    assert killed.returncode == -9, killed.stdout[-2000:] + killed.stderr[-2000:]
    assert os.path.exists(user["marker"])
    db = sqlite3.connect(os.path.join(root, "metadata.sqlite"))
    run_id, status = db.execute("SELECT run_id, status FROM runs ORDER BY start_time DESC LIMIT 1").fetchone()
    assert status == "RUNNING"

    resumed = run_pipeline(load_pipeline_config(path), resume=True)
    assert resumed.run_id == run_id
    assert resumed.executed == ["trainer", "evaluator", "pusher"]
    starts = json.load(open(user["record"]))
    # The killed attempt started at step 0; the resumed one from its last backup (saved every 2 steps), not 0.
    assert starts[0] == 0 and len(starts) == 2 and 2 <= starts[1] <= 5, starts
    assert resumed.outputs["pusher"]["pushed_model"].properties["pushed"] is True


def test_drifted_data_stops_the_run_at_validation_with_a_report(base, tmp_path):
    raw = _simulate(str(tmp_path / "raw" / "drift.txt"), positive_rate=0.512, seed=8)
    with open(raw) as f:
        lines = f.read().splitlines()
    with open(raw, "w") as f:  # I5 (column 5 of label, I1..I13, C1..C26) missing everywhere
        for line in lines:
            cols = line.split("\t")
            if len(cols) > 5:
                cols[5] = ""
            f.write("\t".join(cols) + "\n")
    path, root, serving = _fork(base, tmp_path)
    cfg = load_pipeline_config(path, [f"prepare.inputs=['{raw}']"])
    with pytest.raises(PipelineError) as info:
        run_pipeline(cfg)
    message = str(info.value)
    assert message.startswith("example_validator failed")
    assert "[positive_rate_drift]" in message and "[missing_feature] feature I5" in message
    reports = glob.glob(os.path.join(root, "example_validator", "*", "anomalies.txt"))
    assert any("feature I5 is present in 0.0% of train rows" in open(r).read() for r in reports)
    db = sqlite3.connect(os.path.join(root, "metadata.sqlite"))
    run_id, status = db.execute("SELECT run_id, status FROM runs ORDER BY start_time DESC LIMIT 1").fetchone()
    assert status == "FAILED"
    ran = [c for c, in db.execute("SELECT component FROM executions WHERE run_id = ?", (run_id,))]
    assert "trainer" not in ran and ran[-1] == "example_validator"
    assert list_versions(serving) == list_versions(base["serving"])


def test_two_local_trainer_workers_train_under_multi_worker_strategy_and_only_the_chief_exports(base, tmp_path):
    # max_auc_drop 1: blessed whatever the few steps give, so the run ends with a push of the chief's export.
    path, root, serving = _fork(base, tmp_path, {
        "pipeline": {"workers": 2, "worker_timeout_s": 600, "train_steps": 4, "eval_steps": 1},
        "train": {"epochs": 1},
        "evaluator": {"max_auc_drop": 1.0, "min_auc": 0.0}})
    before = list_versions(serving)
    result = run_pipeline(load_pipeline_config(path))
    assert result.executed == ["trainer", "evaluator", "pusher"]
    model = result.outputs["trainer"]["model"]
    out = model.path(root)
    logs = [open(os.path.join(out, f"worker-{i}.log")).read() for i in range(2)]
    summary = json.load(open(os.path.join(out, "model_run_dir", "train_summary.json")))["summary"]
    assert summary["replicas"] == 2, logs[0][-2000:]  # one replica per worker process, in sync
    assert os.path.exists(os.path.join(out, "serving_model_dir", "saved_model.pb"))
    # Worker 1 wrote its collective checkpoints and export to a temporary directory and removed its export.
    assert not os.path.exists(os.path.join(out, ".worker-1-tmp", "serving_model_dir")), logs[1][-2000:]
    pushed = result.outputs["pusher"]["pushed_model"].properties
    assert pushed["pushed"] and list_versions(serving) == before + [pushed["version"]]
