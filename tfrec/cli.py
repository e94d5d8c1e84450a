"""The ``tfrec`` command: demo, simulate, simulate-cascade, prepare, prepare-hybrid, train, evaluate, calibration,
export, item-embeddings, serve, predict, experiment, pipeline run.

Every command takes ``--config FILE.yaml`` and repeated ``--set section.key=value`` overrides (see
``tfrec.config``); its own flags are shorthands for config keys. Bad input exits non-zero with one line on
stderr: ``tfrec <command>: error: <reason>`` (2 for usage and configuration errors and missing or unusable input, 1
for failures while running). The libraries' start-up messages are hidden unless ``--verbose`` (:mod:`tfrec.quiet`).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Dict, List, Optional, Sequence

USAGE_ERROR = 2
RUN_ERROR = 1
#: The sections a pipeline YAML adds to a run config's (``pipelines.tfx.config.PipelineConfig``; named here so that
#: building the parser does not import the pipeline package).
PIPELINE_SECTIONS = ("pipeline", "validator", "evaluator")


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors; every parser takes ``--verbose`` (before or after the command)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                          help="also show the libraries' start-up messages (TensorFlow's CUDA plugin "
                               "registration lines, Beam's apitools warning), hidden by default")

    def error(self, message):  # noqa: D401 - argparse API
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def package_version() -> str:
    """The installed tfrec version (package metadata), or the source tree's when it is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tfrec")
    except PackageNotFoundError:
        from tfrec import __version__

        return __version__


def _common(p: argparse.ArgumentParser) -> None:
    import dataclasses

    from tfrec.config import RunConfig

    sections = ", ".join(f.name for f in dataclasses.fields(RunConfig))
    p.add_argument("--config", help=f"YAML config file (sections: {sections}; every key in tfrec/config/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set train.learning_rate=0.01 (repeatable)")


def _flag_overrides(args: argparse.Namespace, mapping: Dict[str, str]) -> List[str]:
    out = []
    for attr, key in mapping.items():
        value = getattr(args, attr, None)
        if value is None:
            continue
        if isinstance(value, list):
            value = "[" + ", ".join(_yaml_scalar(v) for v in value) + "]"
        else:
            value = _yaml_scalar(value)
        out.append(f"{key}={value}")
    return out


def _yaml_scalar(v) -> str:
    if isinstance(v, str):
        return "'" + v.replace("'", "''") + "'"
    return str(v)


def _load(args, mapping: Dict[str, str], base_yaml: Optional[str] = None):
    from tfrec.config import load_config

    base = load_config(base_yaml) if base_yaml else None
    return load_config(args.config, _flag_overrides(args, mapping) + list(args.overrides), base=base)


def _run_family(cfg):
    """The family of the finished run in ``cfg.train.model_dir``, which must be the family of the dataset
    ``cfg.data.dir`` (:func:`tfrec.families.family_of_run`)."""
    from tfrec.families import family_of, family_of_run

    family = family_of_run(cfg.train.model_dir, cfg.data.dir)
    data = family_of(cfg.data.dir)
    if data is not family:
        raise _UsageError(f"{cfg.train.model_dir} is a {family.name} run and {cfg.data.dir} a {data.name} dataset; "
                          "give the dataset the run trained on")
    return family


def _load_run(args, mapping: Dict[str, str]):
    """The config of a command that loads a finished run: its architecture from ``<model_dir>/config.yaml``; a
    setting that contradicts it is a usage error naming the key (``tfrec.run_config.load_for_run``)."""
    from tfrec.config import load_config
    from tfrec.run_config import load_for_run

    overrides = _flag_overrides(args, mapping) + list(args.overrides)
    model_dir = load_config(args.config, overrides, validate=False).train.model_dir
    return load_for_run(args.config, overrides, model_dir)


# ------------------------------------------------------------------------------------------------ commands


def _cmd_simulate(args) -> int:
    from tfrec.simulation import simulate, simulate_funnel

    cfg = _load(args, {"out": "simulation.output", "rows": "simulation.rows", "seed": "simulation.seed",
                       "positive_rate": "simulation.positive_rate", "kind": "simulation.kind",
                       "noisy_click_share": "simulation.funnel.noisy_click_share"})
    if not cfg.simulation.output:
        raise _UsageError("no output path given (--out or simulation.output)")
    if cfg.simulation.kind == "funnel":
        r = simulate_funnel(cfg.simulation)
        print(f"wrote {r.rows:,} exposures (AliExpress CSV) to {r.output_path}: click rate {r.click_rate:.4f}, "
              f"conversions per click {r.conversion_rate:.4f}, noisy clicks {r.noisy_click_share:.3f} of clicks; "
              f"Bayes AUC ctr {r.truth_ctr_auc:.4f} cvr {r.truth_cvr_auc:.4f} ctcvr {r.truth_ctcvr_auc:.4f} "
              f"(truth: {r.truth_path})")
        return 0
    result = simulate(cfg.simulation, strip_trailing_share=args.strip_trailing_share)
    print(f"wrote {cfg.simulation.rows:,} rows to {cfg.simulation.output} (truth: {result.truth_path})")
    return 0


def _cmd_prepare(args) -> int:
    from tfrec.cli_prepare import run_prepare

    cfg = _load(args, {"input": "prepare.inputs", "train": "prepare.train", "valid": "prepare.valid",
                       "test": "prepare.test", "out": "prepare.output", "format": "prepare.input_format",
                       "beta_pos": "prepare.beta_pos", "min_count": "prepare.min_count",
                       "runner": "prepare.runner"})
    if args.beam_args:
        cfg.prepare.beam_args = list(cfg.prepare.beam_args) + list(args.beam_args)
    if args.progress_every < 0:
        raise _UsageError(f"--progress-every must be >= 0. Received: --progress-every={args.progress_every}")
    run_prepare(cfg.prepare, lambda line: print(line, flush=True), args.progress_every)
    return 0


def _cmd_train(args) -> int:
    cfg = _load(args, {"data": "data.dir", "model_dir": "train.model_dir", "replicas": "train.replicas",
                       "epochs": "train.epochs"})
    if cfg.data.dir and not cfg.train.model_dir:
        raise _UsageError("no model directory given (--model-dir or train.model_dir)")
    _configure_replicas(cfg.train.replicas)
    from tfrec.families import family_of

    family = family_of(cfg.data.dir)
    result = family.train(cfg)
    monitor = result.summary["monitor"]
    # A list-wise batch counts requests: its rate is lists (requests) per second.
    print(f"trained {result.summary['epochs_run']} epoch(s); best {monitor} "
          f"{result.summary['best_' + monitor]:.5f} at epoch {result.summary['best_epoch']}; "
          f"{result.summary['train_examples_per_second']:,.0f} {family.throughput_unit}/s; weights in "
          f"{result.best_weights}")
    return 0


def _cmd_evaluate(args) -> int:
    cfg = _load_run(args, {"data": "data.dir", "model_dir": "train.model_dir"})
    if not cfg.train.model_dir:
        raise _UsageError("no model directory given (--model-dir or train.model_dir)")
    family = _run_family(cfg)
    report = family.evaluate(cfg, split=args.split, output=args.out)
    print(_format_table(family.report_rows(report)))
    return 0


def _cmd_calibration(args) -> int:
    cfg = _load_run(args, {"data": "data.dir", "model_dir": "train.model_dir"})
    if not cfg.train.model_dir:
        raise _UsageError("no model directory given (--model-dir or train.model_dir)")
    if args.buckets < 1:
        raise _UsageError(f"--buckets must be >= 1. Received: --buckets={args.buckets}")
    family = _run_family(cfg)
    if not family.calibration:
        raise _UsageError(f"calibration buckets one probability per row; {cfg.train.model_dir} is a {family.name} "
                          "run")
    from tfrec.evaluate import predict_split
    from tfrec.metrics.calibration import calibration_by_bucket, format_table, overall_bias, write_csv

    model = family.load_trained(cfg)
    batch = family.resolve(cfg).data.eval_batch_size
    p, y, w = predict_split(model, cfg.data.dir, args.split, batch, beta_pos=cfg.data.beta_pos)
    if args.unweighted:
        w = None
    rows = calibration_by_bucket(y, p, w, num_buckets=args.buckets)
    path = args.output or os.path.join(cfg.train.model_dir, f"calibration_{args.split}.csv")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_csv(rows, path)
    weighting = "unweighted" if args.unweighted else "weighted by the weight feature"
    print(f"calibration of {args.split} ({len(y):,} rows, {int(y.sum()):,} positives, {weighting}): "
          f"bias = sum w(p - y) / sum w y per bucket of equal positive frequency")
    print(format_table(rows))
    if len(rows) < args.buckets:
        print(f"{len(rows)} bucket(s) instead of {args.buckets}: a bucket needs at least one positive, and samples "
              "with equal predictions share a bucket")
    print(f"overall bias {overall_bias(y, p, w):+.5f}; table written to {path}")
    return 0


def _cmd_demo(args) -> int:
    from tfrec.demo import DEMO_CONFIG, run_demo

    cfg = _load(args, {"rows": "simulation.rows", "replicas": "train.replicas", "epochs": "train.epochs"},
                base_yaml=DEMO_CONFIG)
    _configure_replicas(cfg.train.replicas)
    run_demo(cfg, os.path.abspath(args.out))
    return 0


def _cmd_serve(args) -> int:
    from serving.server import ModelServer, serve_until_signal, sources_from_args

    try:
        sources = sources_from_args(args.model_name, args.base_path, args.model_config_file)
    except ValueError as e:
        raise _UsageError(str(e)) from e
    if args.max_batch_rows < 1:
        raise _UsageError(f"--max-batch-rows must be >= 1. Received: {args.max_batch_rows}")
    server = ModelServer(sources, host=args.host, port=args.port, poll_seconds=args.poll_seconds,
                         max_message_bytes=int(args.max_message_mb * (1 << 20)), max_batch_rows=args.max_batch_rows)
    serve_until_signal(server, grace=args.grace, printer=lambda s: print(s, flush=True))
    return 0


def _cmd_predict(args) -> int:
    from serving.client import PredictionClient
    from serving.predict_input import InputError, read_examples

    if args.limit is not None and args.limit < 1:
        raise _UsageError(f"--limit must be >= 1. Received: --limit={args.limit}")
    if args.batch_size < 1:
        raise _UsageError(f"--batch-size must be >= 1. Received: --batch-size={args.batch_size}")
    if not os.path.exists(args.input):
        raise _UsageError(f"input file not found: {args.input}")
    sent, names = 0, None
    with PredictionClient(args.server, timeout=args.timeout) as client:
        raw = client.metadata(args.model).get("predict_raw")
        try:
            # Streamed: each batch is read, sent and printed before the next one is read.
            for batch in read_examples(args.input, raw, batch_size=args.batch_size, limit=args.limit):
                outputs = client.predict_examples(args.model, batch, signature=args.signature)
                if names is None:
                    names = sorted(k for k, v in outputs.items() if v.ndim == 1)
                    print("\t".join(["row"] + names))
                for i in range(len(batch)):
                    print("\t".join([str(sent + i)] + [f"{float(outputs[k][i]):.6f}" for k in names]))
                sys.stdout.flush()
                sent += len(batch)
        except (InputError, IsADirectoryError) as e:
            raise _UsageError(str(e)) from None
    if not sent:
        raise _UsageError(f"no examples in {args.input}")
    return 0


def _cmd_export(args) -> int:
    cfg = _load_run(args, {"data": "data.dir", "model_dir": "train.model_dir"})
    if not cfg.train.model_dir:
        raise _UsageError("no model directory given (--model-dir or train.model_dir)")
    if not os.path.isdir(cfg.train.model_dir):
        raise _UsageError(f"model directory not found: {cfg.train.model_dir}")
    if not args.base_path:
        raise _UsageError("no export base path given (--base-path)")
    if os.path.exists(args.base_path) and not os.path.isdir(args.base_path):
        raise _UsageError(f"export base path is not a directory: {args.base_path}")
    if args.warmup_rows < 1:
        raise _UsageError(f"--warmup-rows must be >= 1. Received: --warmup-rows={args.warmup_rows}")
    family = _run_family(cfg)
    if args.items and not family.item_embeddings:
        raise _UsageError(f"--items is for pre-ranking (hybrid-sample) datasets only; {cfg.train.model_dir} is a "
                          f"{family.name} run")
    from export import ExportValidationError, export_model

    schema, model = family.load_schema(cfg.data.dir), family.load_trained(cfg)
    try:
        # With --validate the staged directory is validated before it is published: a failure publishes nothing.
        result = export_model(model, args.base_path, schema, data_dir=cfg.data.dir, model_name=args.model_name,
                              warmup_rows=args.warmup_rows, item_table=args.items, validate=args.validate)
    except ExportValidationError as e:
        print(e.report.format())
        print(f"tfrec export: error: {e}", file=sys.stderr)
        return RUN_ERROR
    print(f"exported version {result.version} to {result.path}: signatures {', '.join(result.signatures)}; "
          f"tasks {', '.join(result.tasks)}; {result.warmup_records} warmup records"
          + (f"; item embeddings in {result.path}/assets.extra/item_embeddings.tfrecord" if args.items else ""))
    if result.validation is not None:
        print(result.validation.format())
    return 0


def _cmd_item_embeddings(args) -> int:
    if not args.export_dir or not os.path.isdir(args.export_dir):
        raise _UsageError(f"export version directory not found: {args.export_dir}")
    if not args.items or not args.out:
        raise _UsageError("give the item table (--items items.jsonl) and the output directory (--out)")
    import tensorflow as tf

    from export.preranking import ITEM_EMBEDDINGS_FILE, read_item_table, write_item_embeddings

    loaded = tf.saved_model.load(args.export_dir)
    if "item_embedding" not in loaded.signatures:
        raise _UsageError(f"{args.export_dir} has no item_embedding signature (not a pre-ranking export)")
    info = write_item_embeddings(loaded.signatures["item_embedding"], read_item_table(args.items), args.out,
                                 batch_size=args.batch_size, source=args.items)
    print(f"{info['count']} item embeddings of dim {info['dim']} written to "
          f"{os.path.join(args.out, ITEM_EMBEDDINGS_FILE)}")
    return 0


def _cmd_pipeline_run(args) -> int:
    import shlex

    from pipelines.tfx import load_pipeline_config, run_pipeline

    cfg = load_pipeline_config(args.config, list(args.overrides))
    extra = [a for text in args.beam_pipeline_args for a in shlex.split(text)] + list(args.beam_args)
    if extra:
        cfg.pipeline.beam_args = list(cfg.pipeline.beam_args) + extra
    _configure_replicas(cfg.train.replicas)
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
        raise _UsageError("--resume belongs to the local engine; under --engine tfx a rerun reuses TFX's cached "
                          "executions")
    try:
        import tfx  # noqa: F401 - the tfx extra

        from pipelines.tfx_native.pipeline import metadata_path, run
    except ImportError as e:
        raise _UsageError(f"--engine tfx needs the tfx extra ({e}): pip install --ignore-requires-python "
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


def _cmd_simulate_cascade(args) -> int:
    from tfrec.simulation.cascade import simulate_cascade

    cfg = _load(args, {"out": "cascade.output", "requests": "cascade.requests", "seed": "cascade.seed"})
    if not cfg.cascade.output:
        raise _UsageError("no output directory given (--out or cascade.output)")
    m = simulate_cascade(cfg.cascade)
    acc = m["ranking_pairwise_accuracy"]
    print(f"wrote {m['requests']:,} requests to {cfg.cascade.output} (requests.jsonl, items.jsonl, meta.json)\n"
          + _format_table([("impressions per request", m["impressions_per_request"]["mean"]),
                           ("click rate", m["click_rate"]), ("purchases per click", m["purchase_per_click"]),
                           ("ranking order accuracy, head items", acc["q0"]),
                           ("ranking order accuracy, tail items", acc["q4"]),
                           ("all-scenario clicks differ", m["all_scenario_clicks_differ"])]))
    return 0


def _cmd_prepare_hybrid(args) -> int:
    from pipelines.hybrid_samples import run

    cfg = _load(args, {"input": "hybrid.inputs", "items": "hybrid.items", "out": "hybrid.output",
                       "runner": "hybrid.runner"})
    if args.beam_args:
        cfg.hybrid.beam_args = list(cfg.hybrid.beam_args) + list(args.beam_args)
    if not cfg.hybrid.inputs or not cfg.hybrid.items:
        raise _UsageError("give the request logs (--input or hybrid.inputs) and the item table (--items or "
                          "hybrid.items)")
    if not cfg.hybrid.output:
        raise _UsageError("no output directory given (--out or hybrid.output)")
    stats = run(cfg.hybrid)
    rows = [("requests in", stats["requests_in"]), ("requests rejected", stats["requests_rejected"])]
    rows += [(f"requests {s}", stats["requests_written"][s]) for s in ("train", "valid", "test")]
    rows += [("items in", stats["items_in"]), ("items rejected", stats["items_rejected"])]
    if stats["items_duplicate"]:
        rows.append(("items duplicated (one kept)", stats["items_duplicate"]))
    rows += [(f"items {t} (train)", n) for t, n in stats["items_per_sample_type"]["train"].items()]
    print(f"prepared {cfg.hybrid.output}\n" + _format_table(rows))
    return 0


def _cmd_simulate_taobao(args) -> int:
    from tfrec.simulation.taobao import simulate_taobao

    cfg = _load(args, {"out": "taobao_sim.output", "rows": "taobao_sim.impressions", "layout": "taobao_sim.layout",
                       "seed": "taobao_sim.seed"})
    if not cfg.taobao_sim.output:
        raise _UsageError("no output directory given (--out or taobao_sim.output)")
    m = simulate_taobao(cfg.taobao_sim)
    print(f"wrote {cfg.taobao_sim.impressions:,} impressions ({cfg.taobao_sim.layout} layout, simulated) to "
          f"{cfg.taobao_sim.output}: click rate {m['click_rate']:.4f}, AUC of the true click probability "
          f"{m['true_probability_auc']:.4f}")
    return 0


def _cmd_prepare_taobao(args) -> int:
    from tfrec.experiments.hccp_taobao import prepare_taobao

    cfg = _load(args, {"raw_sample": "taobao.raw_sample", "ad_feature": "taobao.ad_feature",
                       "user_profile": "taobao.user_profile", "behavior_log": "taobao.behavior_log",
                       "joined": "taobao.joined", "runner": "taobao.runner"})
    if bool(cfg.taobao.raw_sample) == bool(cfg.taobao.joined):
        raise _UsageError("give the Alibaba files (--raw-sample, --ad-feature, optional --user-profile and "
                          "--behavior-log) or the pre-joined file (--joined)")
    lists = prepare_taobao(cfg, args.out)
    print(f"prepared {lists}\nrun: tfrec experiment hccp-taobao --data {lists} --out <dir>")
    return 0


def _cmd_experiment(args) -> int:
    from tfrec.experiments import Options, get, names, run_protocol, seeds_of

    if args.seeds < 1:
        raise _UsageError(f"--seeds must be >= 1. Received: --seeds={args.seeds}")
    if args.beta_pos is not None and not 0.0 < args.beta_pos <= 1.0:
        raise _UsageError(f"--beta-pos must be in (0, 1]. Received: --beta-pos={args.beta_pos}")
    if args.buckets < 1:
        raise _UsageError(f"--buckets must be >= 1. Received: --buckets={args.buckets}")
    data = args.data
    if not data and not args.quick:
        raise _UsageError("no dataset given (--data DIR, a `tfrec prepare` output; or --quick to simulate one)")
    chosen = names() if args.protocol == "all" else [args.protocol]
    configs = {name: _experiment_config(args, get(name)) for name in chosen}
    # First TensorFlow work of the process: as many logical CPU devices as any chosen protocol's config wants.
    _configure_replicas(max(cfg.train.replicas for cfg in configs.values()))
    values = tuple(float(v) for v in args.values.split(",")) if args.values else None
    opts = Options(beta_pos=0.1 if args.beta_pos is None else args.beta_pos, values=values, quick=args.quick,
                   buckets=args.buckets)
    only = [s for s in args.settings.split(",") if s] if args.settings else None
    ran = 0
    for name in chosen:
        run_data = _experiment_data(args, get(name), configs[name], data)
        if run_data is not None:
            run_protocol(name, run_data, seeds_of(args.seeds), args.out, configs[name], opts, only=only)
            ran += 1
    if not ran:
        raise _UsageError(f"no protocol runs on the dataset {data}")
    return 0


def _experiment_config(args, protocol):
    """The base config of ``protocol``: with --quick its own quick preset (default the KDD one), then --config
    and --set."""
    from tfrec.experiments.quick import QUICK_CONFIG

    return _load(args, {}, base_yaml=(protocol.quick_config or QUICK_CONFIG) if args.quick else None)


def _experiment_data(args, protocol, cfg, data: Optional[str]) -> Optional[str]:
    """The dataset ``protocol`` runs on: with --quick and no --data, its own simulated one; with `all` and --data,
    None for a protocol whose kind of dataset that is not (it is skipped, with a line saying so)."""
    from tfrec.data import DatasetError
    from tfrec.experiments.quick import prepare_quick_data
    from tfrec.families import get

    if data is None:
        return (protocol.quick_data or prepare_quick_data)(cfg, args.out)
    if args.protocol == "all":
        try:
            get(protocol.family).check_dataset(data)
        except (DatasetError, KeyError, ValueError) as e:
            print(f"{protocol.name}: skipped, {data} is not its kind of dataset ({' '.join(str(e).split())})")
            return None
    return data


def _configure_replicas(replicas: int) -> None:
    # First TensorFlow work of the process: split the CPU into logical devices for MirroredStrategy.
    from tfrec.devices import configure_cpu_replicas

    configure_cpu_replicas(replicas)


# ------------------------------------------------------------------------------------------------ output


def _format_table(rows: Sequence) -> str:
    width = max(len(str(k)) for k, _ in rows)
    lines = []
    for k, v in rows:
        if isinstance(v, float):
            v = f"{v:.5f}"
        elif isinstance(v, int):
            v = f"{v:,}"
        lines.append(f"  {str(k):<{width}}  {v}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ main


class _UsageError(ValueError):
    pass


def build_parser() -> argparse.ArgumentParser:
    import dataclasses

    from tfrec.config import RunConfig

    parser = _Parser(prog="tfrec", description="Ranking-aware CTR models: data pipelines, training, evaluation.")
    parser.add_argument("--version", action="version", version=f"tfrec {package_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("demo", help="simulate click logs, prepare them with Beam, train DCN V2, evaluate")
    p.add_argument("--out", default="tfrec_demo", help="working directory of the demo (default: ./tfrec_demo)")
    p.add_argument("--rows", type=int, help="simulated rows (default 150000)")
    p.add_argument("--replicas", type=int, help="MirroredStrategy replicas (default 2)")
    p.add_argument("--epochs", type=int, help="training epochs (default 3)")
    _common(p)
    p.set_defaults(fn=_cmd_demo)

    p = sub.add_parser("simulate", help="write Criteo-shaped click logs (Kaggle train.txt format) with known truth")
    p.add_argument("--out", help="train.txt path to write")
    p.add_argument("--rows", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--positive-rate", dest="positive_rate", type=float)
    p.add_argument("--strip-trailing-share", dest="strip_trailing_share", type=float, default=0.0,
                   help="share of lines whose trailing empty fields are stripped")
    p.add_argument("--kind", choices=["criteo", "funnel"],
                   help="criteo (click logs, default) or funnel (click -> conversion with noisy clicks, AliExpress "
                        "CSV layout; settings under simulation.funnel)")
    p.add_argument("--noisy-click-share", dest="noisy_click_share", type=float,
                   help="funnel: share of clicks that are noise and never convert")
    _common(p)
    p.set_defaults(fn=_cmd_simulate)

    p = sub.add_parser("prepare", help="Criteo TSV/CSV or AliExpress / Ali-CCP CSV -> validated, split, weighted "
                                       "TFRecords (Apache Beam)",
                       epilog="Exit status: 0 done; 2 usage, config or unusable input (a missing file, a directory, "
                              "an archive, a header that does not fit the format, --train without --valid, a file "
                              "in two splits); 1 the run failed or wrote no usable training data (no rows, every row "
                              "rejected, an empty train or valid split).")
    p.add_argument("--input", nargs="+", help="input files or globs (split 7:2:1 by hash)")
    p.add_argument("--train", nargs="+", help="train files (instead of --input; needs --valid)")
    p.add_argument("--valid", nargs="+", help="validation files (required with --train)")
    p.add_argument("--test", nargs="+", help="test files (optional with --train / --valid)")
    p.add_argument("--out", help="output directory")
    p.add_argument("--format", choices=["auto", "kaggle", "x1", "aliexpress", "aliccp"],
                   help="Criteo: auto, kaggle, x1; multi-task (click, conversion): aliexpress, aliccp")
    p.add_argument("--beta-pos", dest="beta_pos", type=float, help="weight of positives (KDD 2024 Eq. 15)")
    p.add_argument("--min-count", dest="min_count", type=int, help="vocabulary min count on the train split")
    p.add_argument("--runner", help="Beam runner (default DirectRunner)")
    p.add_argument("--progress-every", dest="progress_every", type=float, default=5.0, metavar="SECONDS",
                   help="a progress line (rows read, written, rejected) every SECONDS while Beam runs (default 5; "
                        "0: none)")
    p.add_argument("beam_args", nargs="*", help="after --: extra Beam pipeline options")
    _common(p)
    p.set_defaults(fn=_cmd_prepare)

    p = sub.add_parser("train", help="train a model on a prepared dataset under MirroredStrategy")
    p.add_argument("--data", help="prepared dataset directory")
    p.add_argument("--model-dir", dest="model_dir", help="checkpoints, logs and the best weights go here")
    p.add_argument("--replicas", type=int)
    p.add_argument("--epochs", type=int)
    _common(p)
    p.set_defaults(fn=_cmd_train)

    p = sub.add_parser("evaluate", help="AUC and logloss (unweighted and weighted) of a trained model")
    p.add_argument("--data", help="prepared dataset directory")
    p.add_argument("--model-dir", dest="model_dir", help="model directory of a finished `tfrec train`")
    p.add_argument("--split", default="test", choices=["train", "valid", "test"])
    p.add_argument("--out", help="metrics.json path (default <model_dir>/metrics.json; one entry per split)")
    _common(p)
    p.set_defaults(fn=_cmd_evaluate)

    p = sub.add_parser("calibration", help="calibration bias per pCTR bucket of equal positive frequency "
                                           "(KDD 2024 Fig. 8) of a trained model")
    p.add_argument("--data", help="prepared dataset directory")
    p.add_argument("--model-dir", dest="model_dir", help="model directory of a finished `tfrec train`")
    p.add_argument("--split", default="test", choices=["train", "valid", "test"])
    p.add_argument("--buckets", type=int, default=45, help="buckets of equal positive frequency (default 45)")
    p.add_argument("--unweighted", action="store_true",
                   help="ignore the weight feature (default: weight samples by it, as training does)")
    p.add_argument("--output", help="CSV path (default <model_dir>/calibration_<split>.csv)")
    _common(p)
    p.set_defaults(fn=_cmd_calibration)

    p = sub.add_parser("serve", help="serve SavedModel versions over gRPC (TF Serving's PredictionService)")
    p.add_argument("--model-name", dest="model_name", help="model name clients ask for (default 'default')")
    p.add_argument("--base-path", dest="base_path", help="directory of integer version directories")
    p.add_argument("--model-config-file", dest="model_config_file", help="TF Serving models.config instead")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8500, help="gRPC port (default 8500; 0 picks a free one)")
    p.add_argument("--poll-seconds", dest="poll_seconds", type=float, default=1.0,
                   help="how often to look for new versions (default 1)")
    p.add_argument("--max-message-mb", dest="max_message_mb", type=float, default=64.0,
                   help="largest request or response in MiB (default 64)")
    p.add_argument("--max-batch-rows", dest="max_batch_rows", type=int, default=65536,
                   help="most rows (examples, candidates) one request may hold; more is INVALID_ARGUMENT "
                        "(default 65536)")
    p.add_argument("--grace", type=float, default=5.0, help="seconds calls in flight get on SIGTERM (default 5)")
    p.set_defaults(fn=_cmd_serve)

    p = sub.add_parser("predict", help="predictions from a PredictionService (tfrec serve or TF Serving)")
    p.add_argument("--server", default="127.0.0.1:8500", help="host:port (default 127.0.0.1:8500)")
    p.add_argument("--model", required=True, help="model name")
    p.add_argument("--input", required=True,
                   help="rows.tsv (header = feature names), raw Criteo Kaggle rows (train.txt: no header, as "
                        "prepare reads them), either one gzipped, or a TFRecord of tf.Example (.tfrecord, "
                        ".tfrecord.gz); read as a stream")
    p.add_argument("--signature", help="signature name (default: read from the model's metadata)")
    p.add_argument("--limit", type=int, default=None, help="read and send at most this many rows")
    p.add_argument("--batch-size", dest="batch_size", type=int, default=1024,
                   help="rows per request (default 1024)")
    p.add_argument("--timeout", type=float, default=10.0, help="deadline of each call in seconds (default 10)")
    p.set_defaults(fn=_cmd_predict)

    p = sub.add_parser("export", help="export a trained model as the next SavedModel version for TF Serving")
    p.add_argument("--data", help="prepared dataset directory (schema; warmup rows)")
    p.add_argument("--model-dir", dest="model_dir", help="model directory of a finished `tfrec train`")
    p.add_argument("--base-path", dest="base_path", help="TF Serving model base path; versions 1, 2, ... go here")
    p.add_argument("--model-name", dest="model_name", default="", help="model name in the warmup requests")
    p.add_argument("--warmup-rows", dest="warmup_rows", type=int, default=16,
                   help="dataset rows in each warmup request (default 16)")
    p.add_argument("--validate", action="store_true",
                   help="before publishing the version, reload it in a fresh process and compare it with the Keras "
                        "model; a failed check publishes nothing (exit 1)")
    p.add_argument("--items", help="pre-ranking: item table (items.jsonl) whose item embeddings go to the "
                                   "version's assets.extra/item_embeddings.tfrecord")
    _common(p)
    p.set_defaults(fn=_cmd_export)
    p = sub.add_parser("item-embeddings", help="pre-ranking: item embeddings of an item table from an export's "
                                               "item_embedding signature")
    p.add_argument("--export-dir", dest="export_dir", help="an exported version directory (models/hccp/1)")
    p.add_argument("--items", help="item table (items.jsonl: item_id, category, price per line)")
    p.add_argument("--out", help="output directory (item_embeddings.tfrecord, item_embeddings.json)")
    p.add_argument("--batch-size", dest="batch_size", type=int, default=4096, help="items per call (default 4096)")
    p.set_defaults(fn=_cmd_item_embeddings)
    p = sub.add_parser("pipeline", help="run the whole flow as a pipeline of components (caching, resume)")
    psub = p.add_subparsers(dest="pipeline_command", metavar="PIPELINE_COMMAND", parser_class=_Parser)
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
    p = sub.add_parser("simulate-cascade", help="write recommendation-cascade logs (retrieval -> exposure -> "
                                                "clicks, purchases) for HCCP pre-ranking data")
    p.add_argument("--out", help="output directory")
    p.add_argument("--requests", type=int)
    p.add_argument("--seed", type=int)
    _common(p)
    p.set_defaults(fn=_cmd_simulate_cascade)

    p = sub.add_parser("prepare-hybrid", help="cascade logs -> HCCP hybrid samples, one ExampleListWithContext "
                                              "per request (Apache Beam)")
    p.add_argument("--input", nargs="+", help="request log files or globs (requests.jsonl)")
    p.add_argument("--items", nargs="+", help="item table files or globs (items.jsonl)")
    p.add_argument("--out", help="output directory")
    p.add_argument("--runner", help="Beam runner (default DirectRunner)")
    p.add_argument("beam_args", nargs="*", help="after --: extra Beam pipeline options")
    _common(p)
    p.set_defaults(fn=_cmd_prepare_hybrid)

    p = sub.add_parser("simulate-taobao", help="write simulated files in the Taobao display-ad log's layouts "
                                               "(raw_sample.csv, ad_feature.csv, ...; clicks depend on history)")
    p.add_argument("--out", help="output directory")
    p.add_argument("--rows", type=int, help="impressions (raw_sample.csv rows)")
    p.add_argument("--layout", choices=("alibaba", "joined", "both"))
    p.add_argument("--seed", type=int)
    _common(p)
    p.set_defaults(fn=_cmd_simulate_taobao)

    p = sub.add_parser("prepare-taobao", help="the Taobao display-ad log (either layout) -> requests, DIN, "
                                              "HCCP lists under --out (for `tfrec experiment hccp-taobao`)")
    p.add_argument("--raw-sample", dest="raw_sample", nargs="+", help="raw_sample.csv files or globs")
    p.add_argument("--ad-feature", dest="ad_feature", nargs="+", help="ad_feature.csv")
    p.add_argument("--user-profile", dest="user_profile", nargs="+", help="user_profile.csv (optional)")
    p.add_argument("--behavior-log", dest="behavior_log", nargs="+", help="behavior_log.csv (optional: history)")
    p.add_argument("--joined", nargs="+", help="the pre-joined FuxiCTR CSV (instead of the Alibaba files)")
    p.add_argument("--out", required=True, help="output directory (raw/, requests/, din/, lists/)")
    p.add_argument("--runner", help="Beam runner (default DirectRunner)")
    _common(p)
    p.set_defaults(fn=_cmd_prepare_taobao)

    from tfrec.experiments.protocols import names as protocol_names

    p = sub.add_parser("experiment", help="an experiment protocol (KDD 2024 losses, PWiseR multi-task, HCCP "
                                          "pre-ranking) over settings and seeds: tables, plots, run record "
                                          "(resumable)")
    p.add_argument("protocol", choices=protocol_names() + ["all"], help="the protocol to run (all: every one)")
    p.add_argument("--data", help="prepared dataset directory (omit with --quick to simulate one)")
    p.add_argument("--seeds", type=int, default=5, help="seeds 2020, 2021, ... (default 5, the paper's 2020-2024)")
    p.add_argument("--out", required=True, help="experiment directory (cells, runs, one report folder per protocol)")
    p.add_argument("--quick", action="store_true",
                   help="simulated data, small model, thinned sweeps (tfrec/configs/experiment_quick.yaml)")
    p.add_argument("--beta-pos", dest="beta_pos", type=float,
                   help="beta_pos of every protocol but sparsity (default 0.1)")
    p.add_argument("--values", help="comma-separated values of the protocol's sweep (beta_pos, alpha, gamma, keep "
                                    "ratio) instead of the paper's")
    p.add_argument("--settings", help="comma-separated setting names to run (default: all of the protocol's)")
    p.add_argument("--buckets", type=int, default=45, help="pCTR buckets of the calibration plot (default 45)")
    _common(p)
    p.set_defaults(fn=_cmd_experiment)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    prog = f"tfrec {args.command}"
    try:
        from tfrec.quiet import import_quietly, noisy_modules

        import_quietly(noisy_modules(args.command), verbose=getattr(args, "verbose", False))
        return args.fn(args)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - every failure becomes one line; TFREC_DEBUG=1 shows the traceback
        if os.environ.get("TFREC_DEBUG"):
            raise
        code = USAGE_ERROR if _is_usage_error(e) else RUN_ERROR
        message = " ".join(str(e).split()) or type(e).__name__
        print(f"{prog}: error: {message}", file=sys.stderr)
        return code


def _is_usage_error(e: Exception) -> bool:
    from tfrec.config import ConfigError

    return isinstance(e, (ConfigError, _UsageError, FileNotFoundError))


if __name__ == "__main__":
    sys.exit(main())
