"""TF Serving configuration files: models.config, the batching parameters file and the monitoring config.

models.config is a ``ModelServerConfig`` (tensorflow_serving.config, installed with tensorflow-serving-api).
The batching parameters (``BatchingParameters`` in TF Serving's session_bundle_config.proto) and the monitoring
config (``MonitoringConfig`` in monitoring_config.proto) are not in that package, so their messages are declared
here with the same field names and types, and every file is written by protobuf's text_format from a message:
what we write parses the way tensorflow_model_server parses it.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence

from google.protobuf import descriptor_pb2, descriptor_pool, text_format
from google.protobuf import message_factory
from google.protobuf import wrappers_pb2  # noqa: F401 - registers google/protobuf/wrappers.proto in the pool

from serving.manager import ModelSource, parse_model_config

PROMETHEUS_PATH = "/monitoring/prometheus/metrics"
_INT64, _BOOL, _STRING, _MESSAGE = (descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
                                    descriptor_pb2.FieldDescriptorProto.TYPE_BOOL,
                                    descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
                                    descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE)
_OPTIONAL, _REPEATED = (descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
                        descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED)


def _messages():
    """``(BatchingParameters, MonitoringConfig)`` classes with TF Serving's field names, numbers and types."""
    f = descriptor_pb2.FileDescriptorProto(name="tfrec/serving/tf_serving_mirror.proto",
                                           package="tfrec.tf_serving_mirror", syntax="proto3",
                                           dependency=["google/protobuf/wrappers.proto"])
    b = f.message_type.add(name="BatchingParameters")
    for i, (name, kind) in enumerate([("max_batch_size", "I"), ("batch_timeout_micros", "I"),
                                      ("max_enqueued_batches", "I"), ("num_batch_threads", "I"),
                                      ("thread_pool_name", "S"), ("allowed_batch_sizes", "R"),
                                      ("pad_variable_length_inputs", "B"), ("enable_large_batch_splitting", "B"),
                                      ("max_execution_batch_size", "I")], start=1):
        if kind == "I":
            b.field.add(name=name, number=i, label=_OPTIONAL, type=_MESSAGE, type_name=".google.protobuf.Int64Value")
        elif kind == "S":
            b.field.add(name=name, number=i, label=_OPTIONAL, type=_MESSAGE, type_name=".google.protobuf.StringValue")
        elif kind == "R":
            b.field.add(name=name, number=i, label=_REPEATED, type=_INT64)
        else:
            b.field.add(name=name, number=i, label=_OPTIONAL, type=_BOOL)
    p = f.message_type.add(name="PrometheusConfig")
    p.field.add(name="enable", number=1, label=_OPTIONAL, type=_BOOL)
    p.field.add(name="path", number=2, label=_OPTIONAL, type=_STRING)
    m = f.message_type.add(name="MonitoringConfig")
    m.field.add(name="prometheus_config", number=1, label=_OPTIONAL, type=_MESSAGE,
                type_name=".tfrec.tf_serving_mirror.PrometheusConfig")
    pool = descriptor_pool.Default()
    try:
        pool.Add(f)
    except TypeError:  # already added by an earlier import
        pass
    get = getattr(message_factory, "GetMessageClass", None)
    names = ("tfrec.tf_serving_mirror.BatchingParameters", "tfrec.tf_serving_mirror.MonitoringConfig")
    if get is not None:
        return tuple(get(pool.FindMessageTypeByName(n)) for n in names)
    factory = message_factory.MessageFactory(pool)
    return tuple(factory.GetPrototype(pool.FindMessageTypeByName(n)) for n in names)


BatchingParameters, MonitoringConfig = _messages()


def _write(path: str, text: str) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
    return path


def model_config_text(models: Sequence[ModelSource]) -> str:
    """models.config text (a ModelServerConfig) for the given models and their version policies."""
    from tensorflow_serving.config import model_server_config_pb2

    cfg = model_server_config_pb2.ModelServerConfig()
    for src in models:
        m = cfg.model_config_list.config.add(name=src.name, base_path=src.base_path, model_platform="tensorflow")
        if src.policy == "latest":
            m.model_version_policy.latest.num_versions = src.latest_n
        elif src.policy == "specific":
            m.model_version_policy.specific.versions.extend(src.versions)
        else:
            m.model_version_policy.all.SetInParent()
        for label, version in sorted(src.labels.items()):
            m.version_labels[label] = version
    text = text_format.MessageToString(cfg)
    parse_model_config(text)  # what we write, our server and TF Serving read back
    return text


def write_model_config(path: str, models: Sequence[ModelSource]) -> str:
    """Writes models.config (``--model_config_file``); returns the path."""
    if not models:
        raise ValueError("models.config needs at least one model")
    return _write(path, model_config_text(models))


def batching_parameters_text(max_batch_size: int = 8192, num_batch_threads: Optional[int] = None,
                             batch_timeout_micros: int = 0, max_enqueued_batches: Optional[int] = None,
                             allowed_batch_sizes: Sequence[int] = (),
                             pad_variable_length_inputs: bool = False) -> str:
    """The batching parameters file (``--enable_batching --batching_parameters_file``), TF Serving's CPU guidance.

    TF Serving's batching guide, for CPU-only serving: start with ``num_batch_threads`` equal to the number of
    CPU cores, ``max_batch_size`` very high, ``batch_timeout_micros`` 0, then try timeouts of 1000 to 10000
    microseconds (0 may stay the best). ``max_batch_size`` must be at least the largest request (a 4096-row CTR
    batch is one task), unless large batch splitting is on.

    Args:
      max_batch_size: largest batch, in rows (default 8192).
      num_batch_threads: batches run at once (default: the CPU cores of this machine).
      batch_timeout_micros: how long a partial batch waits for more rows.
      max_enqueued_batches: queued batches before requests are refused (default: ``num_batch_threads``, so a
        request waits at most about one batch).
      allowed_batch_sizes: optional increasing sizes, the last equal to ``max_batch_size`` (batches pad up).
      pad_variable_length_inputs: pad inputs of different lengths in a batch.
    """
    threads = num_batch_threads or os.cpu_count() or 1
    queued = max_enqueued_batches or threads
    for name, value in (("max_batch_size", max_batch_size), ("num_batch_threads", threads),
                        ("max_enqueued_batches", queued)):
        if value < 1:
            raise ValueError(f"`{name}` must be >= 1. Received: {name}={value}")
    if batch_timeout_micros < 0:
        raise ValueError(f"`batch_timeout_micros` must be >= 0. Received: batch_timeout_micros={batch_timeout_micros}")
    sizes = list(allowed_batch_sizes)
    if sizes and (sizes != sorted(set(sizes)) or sizes[-1] != max_batch_size):
        raise ValueError("`allowed_batch_sizes` must increase and end with max_batch_size. Received: "
                         f"allowed_batch_sizes={sizes}, max_batch_size={max_batch_size}")
    p = BatchingParameters()
    p.max_batch_size.value = max_batch_size
    p.batch_timeout_micros.value = batch_timeout_micros
    p.max_enqueued_batches.value = queued
    p.num_batch_threads.value = threads
    p.allowed_batch_sizes.extend(sizes)
    p.pad_variable_length_inputs = pad_variable_length_inputs
    # proto3 prints nothing for a zero value; spell it out so the file reads as TF Serving's examples do.
    return text_format.MessageToString(p).replace("batch_timeout_micros {\n}", "batch_timeout_micros {\n  value: 0\n}")


def write_batching_parameters(path: str, **kwargs) -> str:
    """Writes :func:`batching_parameters_text` to ``path``; returns the path."""
    return _write(path, batching_parameters_text(**kwargs))


def monitoring_config_text(path: str = PROMETHEUS_PATH) -> str:
    """The monitoring config (``--monitoring_config_file``): Prometheus metrics at ``path`` on the REST port."""
    if not path.startswith("/"):
        raise ValueError(f"the metrics path must start with '/'. Received: path={path!r}")
    m = MonitoringConfig()
    m.prometheus_config.enable = True
    m.prometheus_config.path = path
    return text_format.MessageToString(m)


def write_monitoring_config(path: str, metrics_path: str = PROMETHEUS_PATH) -> str:
    """Writes :func:`monitoring_config_text` to ``path``; returns the path."""
    return _write(path, monitoring_config_text(metrics_path))


def write_all(out_dir: str, models: Sequence[ModelSource], **batching) -> dict:
    """Writes models.config, batching_parameters.txt and monitoring.config into ``out_dir``; returns the paths."""
    return {"model_config_file": write_model_config(os.path.join(out_dir, "models.config"), models),
            "batching_parameters_file": write_batching_parameters(
                os.path.join(out_dir, "batching_parameters.txt"), **batching),
            "monitoring_config_file": write_monitoring_config(os.path.join(out_dir, "monitoring.config"))}
