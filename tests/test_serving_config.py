"""serving.config: the files parse as TF Serving's messages; models.config reads back; bad values are refused."""

import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from serving.config import (BatchingParameters, MonitoringConfig, batching_parameters_text, write_all,
                            write_batching_parameters)
from serving.manager import ModelSource, parse_model_config, read_model_config


def test_writers_produce_files_tf_serving_parses(tmp_path):
    models = [ModelSource("ctr", "/models/ctr"),
              ModelSource("mt", "/models/mt", policy="specific", versions=(1, 3), labels={"stable": 1}),
              ModelSource("all", "/models/all", policy="all"), ModelSource("two", "/models/two", latest_n=2)]
    paths = write_all(str(tmp_path), models, num_batch_threads=4)
    cfg = text_format.Parse(open(paths["model_config_file"]).read(), model_server_config_pb2.ModelServerConfig())
    entries = {m.name: m for m in cfg.model_config_list.config}
    assert entries["ctr"].base_path == "/models/ctr" and entries["ctr"].model_platform == "tensorflow"
    assert entries["ctr"].model_version_policy.latest.num_versions == 1
    assert list(entries["mt"].model_version_policy.specific.versions) == [1, 3]
    assert dict(entries["mt"].version_labels) == {"stable": 1}
    assert entries["all"].model_version_policy.WhichOneof("policy_choice") == "all"
    assert read_model_config(paths["model_config_file"]) == models
    text = open(paths["batching_parameters_file"]).read()
    b = text_format.Parse(text, BatchingParameters())
    assert (b.max_batch_size.value, b.num_batch_threads.value, b.max_enqueued_batches.value) == (8192, 4, 4)
    assert b.HasField("batch_timeout_micros") and b.batch_timeout_micros.value == 0
    assert "batch_timeout_micros {\n  value: 0\n}" in text  # TF Serving's documented spelling
    m = text_format.Parse(open(paths["monitoring_config_file"]).read(), MonitoringConfig())
    assert m.prometheus_config.enable and m.prometheus_config.path == "/monitoring/prometheus/metrics"


def test_tf_serving_documented_files_parse_into_the_declared_messages():
    # The examples of TF Serving's batching and monitoring guides, verbatim field names.
    text_format.Parse("max_batch_size { value: 128 }\nbatch_timeout_micros { value: 0 }\n"
                      "max_enqueued_batches { value: 1000000 }\nnum_batch_threads { value: 8 }\n"
                      "allowed_batch_sizes: 64\nallowed_batch_sizes: 128\npad_variable_length_inputs: true",
                      BatchingParameters())
    text_format.Parse('prometheus_config { enable: true, path: "/monitoring/prometheus/metrics" }',
                      MonitoringConfig())


def test_default_batching_uses_the_cpu_count(tmp_path):
    import os

    b = text_format.Parse(open(write_batching_parameters(str(tmp_path / "b.txt"))).read(), BatchingParameters())
    assert b.num_batch_threads.value == (os.cpu_count() or 1)


@pytest.mark.parametrize("kwargs, needle", [
    ({"max_batch_size": 0}, "`max_batch_size` must be >= 1"),
    ({"batch_timeout_micros": -1}, "`batch_timeout_micros` must be >= 0"),
    ({"allowed_batch_sizes": (64, 32), "max_batch_size": 64}, "must increase and end with max_batch_size"),
])
def test_bad_batching_values(kwargs, needle):
    with pytest.raises(ValueError, match=needle.replace("(", r"\(")):
        batching_parameters_text(**kwargs)


@pytest.mark.parametrize("text, needle", [
    ("model_config_list { config { name: 'a' } }", "no base_path"),
    ("model_config_list { config { name: 'a' base_path: '/x' model_platform: 'onnx' } }", "not supported"),
    ("model_config_list { config { name: 'a' base_path: '/x' } config { name: 'a' base_path: '/y' } }", "twice"),
    ("model_config_list { config { nme: 'a' } }", "does not parse"),
    ("model_config_list { config { name: 'a' base_path: '/x' model_version_policy { specific { } } } }",
     "needs at least one version"),
    ("", "needs a model_config_list"),
])
def test_bad_model_configs(text, needle):
    with pytest.raises(ValueError, match=needle):
        parse_model_config(text)
