"""Helpers of the TFX tests (not a test): tiny pipeline configs, the pushed model served against the in-process
one, the TFX artifacts of a run read from ml-metadata."""

from __future__ import annotations

import glob
import os

import numpy as np
import tensorflow as tf
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
#: What keeps a run short on a 2-core host: one shard, tiny models, one epoch of a few steps.
TINY = {
    "data": {"batch_size": 128, "eval_batch_size": 1024, "shuffle_buffer": 1000},
    "model": {"dnn_hidden_units": [8], "num_cross_layers": 1, "embedding_dim": 2, "dropout": 0.0},
    "train": {"epochs": 1, "learning_rate": 0.02, "replicas": 1, "log_every_seconds": 0},
}


def write_config(path, settings, base=None):
    """Writes a pipeline YAML: the shipped config ``base`` (a path under configs/, optional), updated per section
    with :data:`TINY` and ``settings``."""
    cfg = {}
    if base:
        with open(os.path.join(ROOT, "configs", base)) as f:
            cfg = yaml.safe_load(f)
    for layer in (TINY, settings):
        for section, values in layer.items():
            cfg.setdefault(section, {}).update(values)
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f)
    return path


def split_records(examples_uri, split="test", n=8):
    """The first ``n`` serialized records of a split of a TFX Examples artifact."""
    files = sorted(glob.glob(os.path.join(examples_uri, f"Split-{split}", "*")))
    return [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP").take(n)]


def served(base_path, model_name, inputs, signature):
    """The outputs of ``signature`` answered by tfrec's PredictionService serving ``base_path``."""
    from serving.client import PredictionClient
    from serving.manager import ModelSource
    from serving.server import ModelServer

    with ModelServer([ModelSource(model_name, base_path)], port=0, poll_seconds=0.2) as server:
        with PredictionClient(server.address, timeout=60.0) as client:
            return client.predict(model_name, inputs, signature=signature)


def assert_served_equals_in_process(base_path, version, model_dir, inputs, signature, outputs):
    """The pushed version ``version`` under ``base_path``, served over gRPC, answers ``inputs`` as the trained
    SavedModel ``model_dir`` does in this process (and the two directories hold the same model)."""
    local = tf.saved_model.load(model_dir).signatures[signature]
    want = local(**{k: tf.constant(v) for k, v in inputs.items()})
    pushed = tf.saved_model.load(os.path.join(base_path, str(version))).signatures[signature]
    again = pushed(**{k: tf.constant(v) for k, v in inputs.items()})
    got = served(base_path, "m", inputs, signature)
    for name in outputs:
        np.testing.assert_array_equal(again[name].numpy(), want[name].numpy())
        np.testing.assert_allclose(got[name], want[name].numpy(), rtol=1e-6, atol=1e-7)
    return got


def output_uri(cfg, node, key):
    """The URI of output ``key`` of ``node``'s newest execution in the pipeline's ml-metadata store."""
    import ml_metadata as mlmd
    from ml_metadata.proto import metadata_store_pb2

    from pipelines.tfx_native.pipeline import metadata_path

    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path(cfg)
    store = mlmd.MetadataStore(config)
    node_ctx = store.get_context_by_type_and_name("node", f"{cfg.pipeline.name}.{node}")
    executions = sorted(store.get_executions_by_context(node_ctx.id), key=lambda e: e.id)
    for e in reversed(executions):
        for event in store.get_events_by_execution_ids([e.id]):
            if event.type == metadata_store_pb2.Event.OUTPUT and event.path.steps[0].key == key:
                return store.get_artifacts_by_id([event.artifact_id])[0].uri
    raise AssertionError(f"no output {key} of {node}")
