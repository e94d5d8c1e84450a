"""``tfrec pipeline run``: the whole flow as a pipeline of components, on tfrec's runner or under TFX."""

from __future__ import annotations

from tfrec.cli.common import Parser, UsageError, configure_replicas

#: The sections a pipeline YAML adds to a run config's (``pipelines.tfx.config.PipelineConfig``; named here so that
#: building the parser does not import the pipeline package).
PIPELINE_SECTIONS = ("pipeline", "validator", "evaluator")


def _cmd_pipeline_run(args) -> int:
    import shlex

    from pipelines.tfx import load_pipeline_config, run_pipeline

    cfg = load_pipeline_config(args.config, list(args.overrides))
    extra = [a for text in args.beam_pipeline_args for a in shlex.split(text)] + list(args.beam_args)
    if extra:
        cfg.pipeline.beam_args = list(cfg.pipeline.beam_args) + extra
    configure_replicas(cfg.train.replicas)
    if args.engine == "tfx":
        return _run_tfx_pipeline(cfg, args)
    result = run_pipeline(cfg, resume=args.resume)
    pushed = result.outputs.get("pusher", {}).get("pushed_model")
    if pushed is not None:
        print("pushed version " + str(pushed.properties["version"]) if pushed.properties.get("pushed")
              else "nothing pushed: " + str(pushed.properties.get("reason", "")))
    return 0


def _run_tfx_pipeline(cfg, args) -> int:
    """``tfrec pipeline run --engine tfx``: the family's TFX pipeline under LocalDagRunner (pipelines.tfx_native)."""
    if args.resume:
        raise UsageError("--resume belongs to the local engine; under --engine tfx a rerun reuses TFX's cached "
                         "executions")
    try:
        import tfx  # noqa: F401 - the tfx extra

        from pipelines.tfx_native.pipeline import metadata_path, run
    except ImportError as e:
        raise UsageError(f"--engine tfx needs the tfx extra ({e}): pip install --ignore-requires-python "
                         "-c constraints-tfx.txt -e '.[tfx]'") from None
    result = run(cfg)
    states = result.states
    print(f"TFX run {result.run_id} of pipeline {cfg.pipeline.name} (ml-metadata {metadata_path(cfg)}): "
          + ", ".join(f"{node} {state.lower()}" for node, state in states.items()))
    if result.pushed and states.get("Pusher") == "CACHED":
        print(f"nothing new pushed (cached); version {result.pushed_version} was pushed to {result.pushed_path}")
    elif result.pushed:
        print(f"pushed version {result.pushed_version} to {result.pushed_path}")
    elif result.blessing is not None:
        print("nothing pushed: model not blessed: " + result.blessing["reasons"])
    return 0


def add_pipeline(sub) -> None:
    import dataclasses

    from tfrec.config import RunConfig

    p = sub.add_parser("pipeline", help="run the whole flow as a pipeline of components (caching, resume)")
    psub = p.add_subparsers(dest="pipeline_command", metavar="PIPELINE_COMMAND", parser_class=Parser)
    psub.required = True
    p = psub.add_parser("run", help="ExampleGen, StatisticsGen, SchemaGen, ExampleValidator, Trainer, Evaluator, "
                                    "Pusher, each cached on its inputs and parameters")
    p.add_argument("--config", required=True, help="pipeline YAML (sections: " + ", ".join(
        [f.name for f in dataclasses.fields(RunConfig)] + list(PIPELINE_SECTIONS)) + ")")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set train.epochs=1 (repeatable)")
    p.add_argument("--resume", action="store_true", help="continue the pipeline's last unfinished run")
    p.add_argument("--engine", choices=("local", "tfx"), default="local",
                   help="local: tfrec's own runner (default); tfx: the TFX 1.15 pipeline under LocalDagRunner with "
                        "ml-metadata (needs the tfx extra)")
    p.add_argument("--beam_pipeline_args", action="append", default=[], metavar="'ARGS'",
                   help="Beam options for ExampleGen as one string, e.g. "
                        "--beam_pipeline_args='--runner=FlinkRunner --flink_master=host:8081' (repeatable)")
    p.add_argument("beam_args", nargs="*", help="after --: more Beam pipeline options")
    p.set_defaults(fn=_cmd_pipeline_run)
