"""A family's TFX pipeline from a tfrec pipeline config; run it under LocalDagRunner or compile it for KFP v2.

    from pipelines.tfx import load_pipeline_config
    from pipelines.tfx_native.pipeline import run
    summary = run(load_pipeline_config("configs/pipeline_criteo.yaml"))

Point-wise and multi-task families (``criteo``, ``multitask``)::

    TfrecExampleGen -> StatisticsGen -> SchemaGen -> ExampleValidator -> ValidationGate
                    -> Trainer (stock, module_file = tfrec/trainer_module.py) -> TfrecEvaluator -> Pusher (stock)

The list-wise family (``hybrid``)::

    TfrecExampleGen -> ListwiseStatisticsGen -> ListwiseExampleValidator -> Trainer -> TfrecEvaluator -> Pusher

Layout under ``pipeline.root``: ``tfx/`` is the TFX pipeline root (``tfx/<component>/<output>/<execution id>/``),
``tfx/metadata.sqlite`` the ml-metadata store and ``tfx/baseline/`` the last validated data (the validators'
reference). The Pusher publishes to ``pipeline.serving_base_path``. Caching is TFX's: a component whose inputs,
parameters and code (the Trainer's module files) are unchanged is not run again; the raw inputs of ExampleGen are
identified by their paths, sizes and modification times when the pipeline is built.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Dict, List, Optional

#: The node ids of the TFX pipeline of each kind of family, in order.
POINTWISE_NODES = ("TfrecExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "ValidationGate",
                   "Trainer", "TfrecEvaluator", "Pusher")
LISTWISE_NODES = ("TfrecExampleGen", "ListwiseStatisticsGen", "ListwiseExampleValidator", "Trainer",
                  "TfrecEvaluator", "Pusher")


def tfx_root(cfg) -> str:
    """The TFX pipeline root: ``<pipeline.root>/tfx``."""
    return os.path.join(os.path.abspath(cfg.pipeline.root), "tfx")


def metadata_path(cfg) -> str:
    """The ml-metadata SQLite file: ``<pipeline.root>/tfx/metadata.sqlite``."""
    return os.path.join(tfx_root(cfg), "metadata.sqlite")


def node_ids(cfg) -> tuple:
    from pipelines.tfx.components.example_gen import family
    from tfrec.families import EXAMPLE_LIST

    return LISTWISE_NODES if family(cfg).records == EXAMPLE_LIST else POINTWISE_NODES


def build_pipeline(cfg, metadata: bool = True):
    """The TFX pipeline of ``cfg`` (a :class:`pipelines.tfx.config.PipelineConfig`); see the module docstring.

    Raises:
      tfrec.config.ConfigError: settings the TFX pipeline cannot honour (``pipeline.workers`` > 1, no serving
        base path).
    """
    from tfx import v1 as tfx

    from pipelines.tfx.components import evaluator, example_gen, example_validator, statistics_gen, trainer
    from pipelines.tfx_native import components as c
    from tfrec.config import ConfigError

    if cfg.pipeline.workers > 1:
        raise ConfigError("pipeline.workers > 1 runs only under the local engine (TFX's Trainer is one process)")
    if not cfg.pipeline.serving_base_path:
        raise ConfigError("pipeline.serving_base_path is empty; the Pusher needs a serving base path")
    from tfrec.families import EXAMPLE_LIST

    fam = example_gen.family(cfg)
    listwise = fam.records == EXAMPLE_LIST
    section = fam.pipeline_section
    gen_params = example_gen.parameters(cfg)
    gen = c.TfrecExampleGen(family=fam.name, config=json.dumps({section: gen_params[section]}),
                            input_fingerprint=json.dumps(gen_params["input_files"], sort_keys=True))
    examples = gen.outputs["examples"]
    baseline = os.path.join(tfx_root(cfg), "baseline", cfg.pipeline.name)
    if listwise:
        stats = c.ListwiseStatisticsGen(examples=examples, params=json.dumps(statistics_gen.parameters(cfg)))
        validator = c.ListwiseExampleValidator(statistics=stats.outputs["statistics"], examples=examples,
                                               params=json.dumps(example_validator.parameters(cfg)),
                                               baseline_dir=baseline)
        upstream: List = [gen, stats, validator]
        schema = None
        gate = validator
    else:
        stats = tfx.components.StatisticsGen(examples=examples)
        schema_gen = tfx.components.SchemaGen(statistics=stats.outputs["statistics"])
        stock = tfx.components.ExampleValidator(statistics=stats.outputs["statistics"],
                                                schema=schema_gen.outputs["schema"])
        params = {**dataclasses.asdict(cfg.validator), "labels": list(fam.labels)}
        gate = c.ValidationGate(statistics=stats.outputs["statistics"], schema=schema_gen.outputs["schema"],
                                anomalies=stock.outputs["anomalies"], params=json.dumps(params),
                                baseline_dir=baseline)
        upstream = [gen, stats, schema_gen, stock, gate]
        schema = schema_gen.outputs["schema"]
    t = trainer.parameters(cfg)
    train_args = tfx.proto.TrainArgs(splits=["train"], **({"num_steps": t["train_steps"]} if t["train_steps"] else {}))
    eval_args = tfx.proto.EvalArgs(splits=["valid"], **({"num_steps": t["eval_steps"]} if t["eval_steps"] else {}))
    train = tfx.components.Trainer(module_file=t["module_file"], examples=examples, schema=schema,
                                   train_args=train_args, eval_args=eval_args, custom_config=t["custom_config"])
    train.add_upstream_node(gate)  # no training on data that did not pass validation
    serving = os.path.abspath(cfg.pipeline.serving_base_path)
    evaluate = c.TfrecEvaluator(examples=examples, model=train.outputs["model"],
                                params=json.dumps(evaluator.parameters(cfg)), serving_base_path=serving)
    push = tfx.components.Pusher(
        model=train.outputs["model"], model_blessing=evaluate.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=serving)))
    os.makedirs(tfx_root(cfg), exist_ok=True)
    return tfx.dsl.Pipeline(
        pipeline_name=cfg.pipeline.name, pipeline_root=tfx_root(cfg), components=upstream + [train, evaluate, push],
        enable_cache=True, beam_pipeline_args=list(cfg.pipeline.beam_args),
        metadata_connection_config=(tfx.orchestration.metadata.sqlite_metadata_connection_config(metadata_path(cfg))
                                    if metadata else None))


@dataclasses.dataclass
class RunSummary:
    """What a LocalDagRunner run did, read back from ml-metadata.

    Attributes:
      run_id: TFX's pipeline run id.
      states: node id -> ``COMPLETE``, ``CACHED``, ``FAILED``, ... (the node's execution in this run).
      pushed: whether the Pusher pushed; ``pushed_version`` / ``pushed_path`` where to.
      blessing: the Evaluator's blessing (``blessed``, ``reasons``, ``metrics``), or None.
    """

    run_id: str
    states: Dict[str, str]
    pushed: bool = False
    pushed_version: Optional[str] = None
    pushed_path: Optional[str] = None
    blessing: Optional[dict] = None


def summary(cfg, run_id: Optional[str] = None) -> RunSummary:
    """The :class:`RunSummary` of run ``run_id`` (default: the newest run) from the ml-metadata store."""
    import ml_metadata as mlmd
    from ml_metadata.proto import metadata_store_pb2

    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path(cfg)
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    store = mlmd.MetadataStore(config)
    runs = [ctx for ctx in store.get_contexts_by_type("pipeline_run")
            if ctx.name == run_id or (run_id is None and ctx.name.startswith(""))]
    runs = [ctx for ctx in runs if _pipeline_of(store, ctx) == cfg.pipeline.name]
    if not runs:
        raise ValueError(f"no run of pipeline {cfg.pipeline.name!r} in {metadata_path(cfg)}")
    run = max(runs, key=lambda ctx: (ctx.create_time_since_epoch, ctx.id))
    executions = {e.id: e for e in store.get_executions_by_context(run.id)}
    out = RunSummary(run_id=run.name, states={})
    prefix = cfg.pipeline.name + "."
    for node in store.get_contexts_by_type("node"):
        if not node.name.startswith(prefix):
            continue
        mine = [e for e in store.get_executions_by_context(node.id) if e.id in executions]
        if not mine:
            continue
        e = max(mine, key=lambda x: x.id)
        name = node.name[len(prefix):]
        out.states[name] = metadata_store_pb2.Execution.State.Name(e.last_known_state)
        for event in store.get_events_by_execution_ids([e.id]):
            if event.type != metadata_store_pb2.Event.OUTPUT:
                continue
            (artifact,) = store.get_artifacts_by_id([event.artifact_id])
            props = artifact.custom_properties
            if name == "Pusher":
                out.pushed = bool(props["pushed"].int_value) if "pushed" in props else False
                out.pushed_version = props["pushed_version"].string_value if "pushed_version" in props else None
                out.pushed_path = props["pushed_destination"].string_value if "pushed_destination" in props else None
            if name == "TfrecEvaluator":
                out.blessing = {"blessed": bool(props["blessed"].int_value),
                                "reasons": props["tfrec_reasons"].string_value,
                                "metrics": json.loads(props["tfrec_metrics"].string_value or "{}")}
    return out


def _pipeline_of(store, run_ctx) -> str:
    """The pipeline name a ``pipeline_run`` context belongs to (its ``pipeline`` parent context)."""
    for parent in store.get_parent_contexts_by_context(run_ctx.id):
        if parent.type_id == store.get_context_type("pipeline").id:
            return parent.name
    return ""


def run(cfg) -> RunSummary:
    """Builds the pipeline of ``cfg`` and runs it with TFX's ``LocalDagRunner``; returns the run's summary.

    Raises:
      RuntimeError: a component failed (TFX's error, e.g. the ValidationGate's list of anomalies).
    """
    from tfx import v1 as tfx

    before = set()
    if os.path.exists(metadata_path(cfg)):
        before = _run_ids(cfg)
    tfx.orchestration.LocalDagRunner().run(build_pipeline(cfg))
    new = _run_ids(cfg) - before
    return summary(cfg, max(new) if new else None)


def _run_ids(cfg) -> set:
    import ml_metadata as mlmd
    from ml_metadata.proto import metadata_store_pb2

    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path(cfg)
    store = mlmd.MetadataStore(config)
    return {ctx.name for ctx in store.get_contexts_by_type("pipeline_run")
            if _pipeline_of(store, ctx) == cfg.pipeline.name}


def compile_kfp(cfg, output_file: str, image: str = "tensorflow/tfx:1.15.1") -> str:
    """Compiles the pipeline of ``cfg`` for Kubeflow Pipelines v2 / Vertex AI with TFX's ``KubeflowV2DagRunner``
    into ``output_file`` (the pipeline JSON); ``image``: the container image the components run in (TFX 1.15 with
    tfrec installed). Returns ``output_file``.

    Raises:
      tfrec.config.ConfigError: ``pipeline.name`` is not a Kubeflow pipeline name (``[a-z0-9][a-z0-9-]{0,127}``).
    """
    import re

    from tfx import v1 as tfx

    from tfrec.config import ConfigError

    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,127}", cfg.pipeline.name):
        raise ConfigError(f"pipeline.name {cfg.pipeline.name!r} is not a Kubeflow Pipelines name "
                          "([a-z0-9][a-z0-9-]{0,127}: lower-case letters, digits and '-')")

    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=image),
        output_dir=os.path.dirname(os.path.abspath(output_file)), output_filename=os.path.basename(output_file))
    runner.run(build_pipeline(cfg, metadata=False), write_out=True)
    return output_file
