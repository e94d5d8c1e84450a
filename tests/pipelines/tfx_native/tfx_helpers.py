"""Helpers of the TFX tests (not a test): tiny pipeline configs, a pipeline of stock TFX components as a TFX user
writes it, the pushed model served against the in-process one, the TFX artifacts of a run read from ml-metadata."""

from __future__ import annotations

import glob
import json
import os

import numpy as np
import tensorflow as tf
import yaml
from tests.support import ROOT

MODULE_FILE = os.path.join(ROOT, "tfrec", "trainer_module.py")
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


def stock_pipeline(name, root, prepared, serving, custom_config, train_steps, module_file=MODULE_FILE, listwise=None,
                   evaluator=None, gate=None, resolver=True, tfrec_evaluator=None):
    """A pipeline of stock TFX components with tfrec as the data and the Trainer's module file: ImportExampleGen
    over the prepared directory ``prepared`` (one input split per ``train-*``, ``valid-*``, ``test-*``) ->
    StatisticsGen -> SchemaGen -> ExampleValidator -> Trainer (``module_file``, ``custom_config["dataset_dir"]`` =
    ``prepared``) -> Pusher (to ``serving``), under LocalDagRunner with an ml-metadata SQLite store in ``root``.

    ``listwise``: ``(statistics params, validator params)`` for list-wise records (``ExampleListWithContext``, which
    TFDV does not read): ImportExampleGen keeps them as serialized protos (``FORMAT_PROTO``) and tfrec's
    ListwiseStatisticsGen / ListwiseExampleValidator replace the three TFDV components.
    ``evaluator``: a TFMA ``EvalConfig``: a Resolver (the latest blessed model; none when ``resolver`` is false) and
    the stock Evaluator on the test split gate the Pusher.
    ``tfrec_evaluator``: instead, the parameters of tfrec's TfrecEvaluator (``pipelines.tfx.components.evaluator
    .parameters``): it gates the Pusher, blessing against them and against the newest version under ``serving``
    (the last blessed model, which the Pusher pushed), its family from ``prepared``'s ``schema.json``.
    ``gate``: the labels' drift and schema checks against the last validated data: tfrec's ValidationGate (with
    these parameters: ``labels``, ``positive_rate_drift``, ...) after the stock ExampleValidator, its baseline in
    ``<root>/baseline``; the Trainer waits for it.
    """
    from tfx import v1 as tfx
    from tfx.proto import example_gen_pb2

    gen = tfx.components.ImportExampleGen(
        input_base=prepared,
        input_config=tfx.proto.Input(splits=[tfx.proto.Input.Split(name=s, pattern=f"{s}-*.tfrecord.gz")
                                             for s in ("train", "valid", "test")]),
        **({"payload_format": example_gen_pb2.FORMAT_PROTO} if listwise else {}))
    examples = gen.outputs["examples"]
    if listwise:
        from pipelines.tfx_native.components import ListwiseExampleValidator, ListwiseStatisticsGen

        stats = ListwiseStatisticsGen(examples=examples, params=json.dumps(listwise[0]), dataset_dir=prepared)
        validator = ListwiseExampleValidator(statistics=stats.outputs["statistics"], examples=examples,
                                             params=json.dumps(listwise[1]), dataset_dir=prepared,
                                             baseline_dir=os.path.join(root, "baseline"))
        checks, schema = [stats, validator], None
    else:
        stats = tfx.components.StatisticsGen(examples=examples)
        schema_gen = tfx.components.SchemaGen(statistics=stats.outputs["statistics"])
        validator = tfx.components.ExampleValidator(statistics=stats.outputs["statistics"],
                                                    schema=schema_gen.outputs["schema"])
        checks, schema = [stats, schema_gen, validator], schema_gen.outputs["schema"]
        if gate is not None:
            from pipelines.tfx_native.components import ValidationGate

            validator = ValidationGate(statistics=stats.outputs["statistics"], schema=schema,
                                       anomalies=validator.outputs["anomalies"], params=json.dumps(gate),
                                       baseline_dir=os.path.join(root, "baseline"))
            checks.append(validator)
    trainer = tfx.components.Trainer(
        module_file=module_file, examples=examples, schema=schema,
        train_args=tfx.proto.TrainArgs(splits=["train"], num_steps=train_steps),
        eval_args=tfx.proto.EvalArgs(splits=["valid"], num_steps=2),
        custom_config={"dataset_dir": prepared, **custom_config})
    trainer.add_upstream_node(validator)
    evaluation = []
    if evaluator is not None:
        if resolver:
            evaluation.append(tfx.dsl.Resolver(
                strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
                model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
                model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing)
            ).with_id("latest_blessed"))
        evaluation.append(tfx.components.Evaluator(
            examples=examples, model=trainer.outputs["model"],
            **({"baseline_model": evaluation[0].outputs["model"]} if resolver else {}),
            eval_config=evaluator, example_splits=["test"]))
    elif tfrec_evaluator is not None:
        from pipelines.tfx_native.components import TfrecEvaluator

        evaluation.append(TfrecEvaluator(examples=examples, model=trainer.outputs["model"],
                                         params=json.dumps(tfrec_evaluator), serving_base_path=serving,
                                         dataset_dir=prepared))
    pusher = tfx.components.Pusher(
        model=trainer.outputs["model"],
        **({"model_blessing": evaluation[-1].outputs["blessing"]} if evaluation else {}),
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=serving)))
    return tfx.dsl.Pipeline(
        pipeline_name=name, pipeline_root=root, components=[gen, *checks, trainer, *evaluation, pusher],
        enable_cache=True,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            os.path.join(root, "metadata.sqlite")),
        beam_pipeline_args=["--direct_num_workers=1", "--direct_running_mode=in_memory"])


def executions(root):
    """node id -> state names of its executions (oldest first), from the ml-metadata store in ``root``."""
    import ml_metadata as mlmd
    from ml_metadata.proto import metadata_store_pb2

    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = os.path.join(root, "metadata.sqlite")
    store = mlmd.MetadataStore(config)
    out = {}
    for node in store.get_contexts_by_type("node"):
        states = [metadata_store_pb2.Execution.State.Name(e.last_known_state)
                  for e in sorted(store.get_executions_by_context(node.id), key=lambda e: e.id)]
        out[node.name.split(".", 1)[1]] = states
    return out


def newest(root, component, output):
    """The URI of the newest ``<root>/<component>/<output>/<execution id>`` directory."""
    uris = glob.glob(os.path.join(root, component, output, "*"))
    return max(uris, key=lambda u: int(os.path.basename(u)))


def tfma_auc_bound(labels, scores, bins=10_000):
    """How far TFMA's AUC of ``scores`` may be from the exact one: TFMA sums the ROC curve over ``bins`` evenly
    spaced thresholds of [0, 1], so a (positive, negative) pair whose scores fall between the same two thresholds
    loses its order (it counts one half); the difference is at most half the share of such pairs."""
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=np.float64)
    index = np.clip(np.floor(scores * bins), 0, bins - 1).astype(np.int64)
    pos = np.bincount(index[labels > 0], minlength=bins)
    neg = np.bincount(index[labels <= 0], minlength=bins)
    return 0.5 * float(np.sum(pos * neg)) / (pos.sum() * neg.sum())


def float_feature(record, name):
    """The first value of feature ``name`` of a serialized ``tf.Example`` (float or int64)."""
    feature = tf.train.Example.FromString(record).features.feature[name]
    return (list(feature.float_list.value) or list(feature.int64_list.value))[0]
