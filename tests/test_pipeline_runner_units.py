"""Pipeline runner pieces without a run: anomaly rules, cache keys, the metadata store, config validation."""

from __future__ import annotations

import os
import time

import pytest

from pipelines.tfx import artifacts, metadata
from pipelines.tfx.components.example_validator import find_anomalies
from pipelines.tfx.components.schema_gen import infer_schema
from pipelines.tfx.config import load_pipeline_config
from tfrec.config import ConfigError

PARAMS = {"positive_rate_drift": 0.3, "max_out_of_range_fraction": 0.01, "min_presence_ratio": 0.5}


def _stats(rate=0.25, presence=1.0, lo=0.0, hi=100.0, extra=None):
    features = {"I1": {"kind": "float", "present": 100, "presence": presence,
                       "percentiles": [lo + (hi - lo) * k / 100 for k in range(101)]},
                "C1": {"kind": "bytes", "present": 100, "presence": 1.0, "distinct": 5}}
    features.update(extra or {})
    return {"train": {"rows": 100, "positives": rate * 100, "positive_rate": rate, "features": features}}


def test_same_data_has_no_anomalies():
    schema = infer_schema(_stats()["train"])
    assert find_anomalies(_stats(), schema, PARAMS) == []


@pytest.mark.parametrize("stats, kind", [
    (_stats(rate=0.5), "positive_rate_drift"),
    (_stats(presence=0.2), "missing_feature"),
    (_stats(extra={"C99": {"kind": "bytes", "present": 1, "presence": 0.01}}), "new_feature"),
    (_stats(lo=50.0, hi=150.0), "out_of_range"),
])
def test_each_anomaly_is_found(stats, kind):
    schema = infer_schema(_stats()["train"])
    found = find_anomalies(stats, schema, PARAMS)
    assert [a["kind"] for a in found] == [kind], found


def test_out_of_range_is_estimated_from_percentiles():
    schema = infer_schema(_stats(lo=0.0, hi=100.0)["train"])
    # 1 percentile point of 101 above the range: about 1%, not more than the 1% allowed.
    assert find_anomalies(_stats(lo=0.0, hi=101.0), schema, PARAMS) == []
    found = find_anomalies(_stats(lo=0.0, hi=110.0), schema, PARAMS)
    # Uniform on [0, 110]: 10/110 = 9.1% of the values are above 100; the estimate is good to 1%.
    assert found[0]["kind"] == "out_of_range" and abs(found[0]["fraction"] - 10 / 110) <= 0.01


def test_cache_key_depends_on_name_parameters_inputs_and_code():
    a = artifacts.Examples(uri="x", fingerprint="f1")
    key = metadata.cache_key("trainer", {"lr": 1}, {"examples": a}, "v1")
    assert key == metadata.cache_key("trainer", {"lr": 1}, {"examples": artifacts.Examples(uri="y", fingerprint="f1")},
                                     "v1")
    assert key != metadata.cache_key("evaluator", {"lr": 1}, {"examples": a}, "v1")
    assert key != metadata.cache_key("trainer", {"lr": 2}, {"examples": a}, "v1")
    assert key != metadata.cache_key("trainer", {"lr": 1}, {"examples": artifacts.Examples(fingerprint="f2")}, "v1")
    assert key != metadata.cache_key("trainer", {"lr": 1}, {"examples": a}, "v2")


def test_metadata_store_round_trip(tmp_path):
    store = metadata.MetadataStore(str(tmp_path / "m.sqlite"))
    store.start_run("r1", "p", {"a": 1}, {"tensorflow": "2.15"})
    model = artifacts.Model(uri="trainer/r1", properties={"serving_model_dir": "s"}, fingerprint="abc")
    eid = store.start_execution("r1", "trainer", "k", {"lr": 1}, {})
    store.end_execution(eid, metadata.COMPLETE, {"model": model})
    store.end_run("r1", metadata.COMPLETE)
    assert store.cached_outputs("k")["model"] == model
    assert store.cached_outputs("other") is None
    assert store.last_run("p", status=metadata.COMPLETE)["run_id"] == "r1"
    assert store.latest_output("trainer", "model", where=lambda m: m.fingerprint == "abc") == model
    assert store.executions("r1")[0]["status"] == metadata.COMPLETE


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="pipeline.root"):
        load_pipeline_config(None)
    with pytest.raises(ConfigError, match="unknown config key `evaluator.nope`"):
        load_pipeline_config(None, ["pipeline.root=/tmp/x", "evaluator.nope=1"])
    with pytest.raises(ConfigError, match="validator.positive_rate_drift"):
        load_pipeline_config(None, ["pipeline.root=/tmp/x", "validator.positive_rate_drift=0"])
    with pytest.raises(ConfigError, match="pipeline.worker_timeout_s"):
        load_pipeline_config(None, ["pipeline.root=/tmp/x", "pipeline.worker_timeout_s=-1"])
    with pytest.raises(ValueError, match="unknown artifact type"):
        artifacts.from_dict({"type": "Nope", "uri": ""})


def test_trainer_workers_that_do_not_finish_in_time_are_stopped_and_fail_the_component(tmp_path):
    # A run_fn that never returns, as a worker stuck in a collective: the deadline stops both processes.
    from pipelines.tfx.components.trainer_workers import run_workers
    from pipelines.tfx.components import ComponentError
    from tfrec.trainer_module import FnArgs

    module = tmp_path / "stuck.py"
    module.write_text("import time\n\ndef run_fn(fn_args):\n    time.sleep(3600)\n")
    args = FnArgs(train_files=[], eval_files=[], train_steps=1, eval_steps=1,
                  serving_model_dir=str(tmp_path / "serving"), model_run_dir=str(tmp_path / "run"))
    start = time.monotonic()
    with pytest.raises(ComponentError, match="did not finish within 10 s"):
        run_workers(args, str(module), 2, str(tmp_path / "out"), timeout_s=10, printer=lambda _: None)
    assert time.monotonic() - start < 90
    assert sorted(os.listdir(tmp_path / "out")) == ["fn_args.json", "worker-0.log", "worker-1.log"]
