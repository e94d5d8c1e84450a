"""Pipeline runner pieces without a run: anomaly rules, cache keys, the metadata store, config validation."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from pipelines.tfx import artifacts, metadata
from pipelines.tfx.components.example_validator import find_anomalies, report
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


def _uniform_counter(lo, hi, n=10_000):
    """The exact counter of a split whose I1 values are n evenly spaced points of [lo, hi]."""
    values = np.linspace(lo, hi, n)

    def count(split, ranges):
        return {name: (int(((values < a) | (values > b)).sum()), n) for name, (a, b) in ranges.items()}
    return count


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
    found = find_anomalies(stats, schema, PARAMS, _uniform_counter(50.0, 150.0))
    assert [a["kind"] for a in found] == [kind], found


def _split_stats(values):
    return {"rows": len(values), "positives": 0.0, "positive_rate": 0.25,
            "features": {"x": {"kind": "float", "present": len(values), "presence": 1.0,
                               "percentiles": [float(v) for v in np.percentile(values, np.arange(101))]}}}


def test_out_of_range_counts_the_real_fraction_not_percentile_points():
    rng = np.random.default_rng(0)
    train = rng.normal(size=14_022)
    valid = np.clip(rng.normal(size=4_014), train.min(), train.max())
    valid[:2] = train.min() - 1.0, train.max() + 1.0  # 2 of 4,014 values outside: 0.05%, not "about 2%"
    many = valid.copy()
    many[:60] = train.max() + 1.0  # 60 of 4,014: 1.49%
    splits = {"train": train, "valid": valid}
    stats = {s: _split_stats(v) for s, v in splits.items()}
    schema = infer_schema(stats["train"])

    def count(split, ranges):
        v = splits[split]
        return {n: (int(((v < lo) | (v > hi)).sum()), v.size) for n, (lo, hi) in ranges.items()}

    assert find_anomalies(stats, schema, PARAMS, count) == []
    splits["valid"] = many
    stats["valid"] = _split_stats(many)
    (found,) = find_anomalies(stats, schema, PARAMS, count)
    assert (found["kind"], found["split"], found["outside"], found["values"]) == ("out_of_range", "valid", 60, 4014)
    assert found["fraction"] == 60 / 4014
    assert "1.49% of x values in valid (60 of 4,014) are outside the schema range" in found["message"]
    # Counting needs the data: a split whose range reaches outside the schema's cannot be judged without it.
    with pytest.raises(ValueError, match="counting them needs the data"):
        find_anomalies(stats, schema, PARAMS)


def test_the_report_with_allow_anomalies_says_the_run_goes_on():
    anomalies = [{"kind": "out_of_range", "message": "3% of x values in valid are outside"}]
    stopped = report(anomalies, "schema.json")
    assert stopped.endswith("set validator.allow_anomalies=true to train anyway, or give a curated "
                            "validator.schema_path")
    allowed = report(anomalies, "schema.json", allowed=True)
    assert "set validator.allow_anomalies=true" not in allowed
    assert allowed.endswith("validator.allow_anomalies=true: training anyway")


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


def test_component_json_is_strict_json(tmp_path):
    import json

    from pipelines.tfx.components import write_json

    path = str(tmp_path / "evaluation.json")
    write_json(path, {"auc": float("nan"), "logloss": float("inf"), "rows": np.int64(3), "p": [np.float32(0.5)]})

    def refuse(token):
        raise AssertionError(f"bare {token} in {path}")

    assert json.load(open(path), parse_constant=refuse) == {"auc": None, "logloss": None, "rows": 3, "p": [0.5]}
