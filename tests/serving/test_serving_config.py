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
    b = text_format.Parse("max_batch_size { value: 128 }\nbatch_timeout_micros { value: 0 }\n"
                          "max_enqueued_batches { value: 1000000 }\nnum_batch_threads { value: 8 }\n"
                          "allowed_batch_sizes: 64\nallowed_batch_sizes: 128\npad_variable_length_inputs: true",
                          BatchingParameters())
    assert (b.max_batch_size.value, b.batch_timeout_micros.value, b.max_enqueued_batches.value,
            b.num_batch_threads.value) == (128, 0, 1000000, 8)
    assert b.HasField("batch_timeout_micros") and not b.HasField("thread_pool_name")
    assert list(b.allowed_batch_sizes) == [64, 128] and b.pad_variable_length_inputs is True
    # The wire bytes, encoded by hand from session_bundle_config.proto's field numbers and types (Int64Value
    # wrappers 1-4, packed repeated int64 6, bool 7): what TF Serving's own message would read.
    assert b.SerializeToString() == bytes([0x0A, 3, 0x08, 0x80, 0x01,  # 1: {1: 128}
                                           0x12, 0,  # 2: {} (value 0, present)
                                           0x1A, 4, 0x08, 0xC0, 0x84, 0x3D,  # 3: {1: 1000000}
                                           0x22, 2, 0x08, 8,  # 4: {1: 8}
                                           0x32, 3, 0x40, 0x80, 0x01,  # 6: packed [64, 128]
                                           0x38, 1])  # 7: true
    path = "/monitoring/prometheus/metrics"
    m = text_format.Parse(f'prometheus_config {{ enable: true, path: "{path}" }}', MonitoringConfig())
    assert m.prometheus_config.enable is True and m.prometheus_config.path == path
    assert m.SerializeToString() == bytes([0x0A, 4 + len(path), 0x08, 1, 0x12, len(path)]) + path.encode()


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
