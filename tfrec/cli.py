"""The ``tfrec`` command: demo, simulate, prepare, train, evaluate, calibration, experiment.

Every command takes ``--config FILE.yaml`` and repeated ``--set section.key=value`` overrides (see
``tfrec.config``); its own flags are shorthands for config keys. Bad input exits non-zero with one line on
stderr: ``tfrec <command>: error: <reason>`` (2 for usage and configuration errors, 1 for failures while running).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Dict, List, Optional, Sequence

USAGE_ERROR = 2
RUN_ERROR = 1


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors."""

    def error(self, message):  # noqa: D401 - argparse API
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML config file (sections: simulation, prepare, data, model, loss, train)")
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


# ------------------------------------------------------------------------------------------------ commands


def _cmd_simulate(args) -> int:
    from tfrec.simulation import simulate

    cfg = _load(args, {"out": "simulation.output", "rows": "simulation.rows", "seed": "simulation.seed",
                       "positive_rate": "simulation.positive_rate"})
    if not cfg.simulation.output:
        raise _UsageError("no output path given (--out or simulation.output)")
    result = simulate(cfg.simulation, strip_trailing_share=args.strip_trailing_share)
    print(f"wrote {cfg.simulation.rows:,} rows to {cfg.simulation.output} (truth: {result.truth_path})")
    return 0


def _cmd_prepare(args) -> int:
    from pipelines.criteo import run

    cfg = _load(args, {"input": "prepare.inputs", "train": "prepare.train", "valid": "prepare.valid",
                       "test": "prepare.test", "out": "prepare.output", "format": "prepare.input_format",
                       "beta_pos": "prepare.beta_pos", "min_count": "prepare.min_count",
                       "runner": "prepare.runner"})
    if args.beam_args:
        cfg.prepare.beam_args = list(cfg.prepare.beam_args) + list(args.beam_args)
    if not cfg.prepare.output:
        raise _UsageError("no output directory given (--out or prepare.output)")
    stats = run(cfg.prepare)
    print(_format_prepare(stats, cfg.prepare.output))
    return 0


def _cmd_train(args) -> int:
    cfg = _load(args, {"data": "data.dir", "model_dir": "train.model_dir", "replicas": "train.replicas",
                       "epochs": "train.epochs"})
    _configure_replicas(cfg.train.replicas)
    from tfrec.train import train

    result = train(cfg)
    print(f"trained {result.summary['epochs_run']} epoch(s); best {cfg.train.monitor} "
          f"{result.summary['best_' + cfg.train.monitor]:.5f} at epoch {result.summary['best_epoch']}; "
          f"{result.summary['train_examples_per_second']:,.0f} examples/s; weights in {result.best_weights}")
    return 0


def _cmd_evaluate(args) -> int:
    cfg = _load(args, {"data": "data.dir", "model_dir": "train.model_dir"})
    from tfrec.evaluate import evaluate

    if not cfg.train.model_dir:
        raise _UsageError("no model directory given (--model-dir or train.model_dir)")
    report = evaluate(cfg, split=args.split, output=args.out)
    print(_format_table([(k, report[k]) for k in ("auc", "logloss", "weighted_auc", "weighted_logloss", "rows",
                                                  "positive_rate", "effective_positive_rate")]))
    return 0


def _cmd_calibration(args) -> int:
    cfg = _load(args, {"data": "data.dir", "model_dir": "train.model_dir"})
    if not cfg.train.model_dir:
        raise _UsageError("no model directory given (--model-dir or train.model_dir)")
    if args.buckets < 1:
        raise _UsageError(f"--buckets must be >= 1. Received: --buckets={args.buckets}")
    from tfrec.evaluate import predict_split
    from tfrec.metrics.calibration import calibration_by_bucket, format_table, overall_bias, write_csv
    from tfrec.train import load_trained_model

    model = load_trained_model(cfg)
    p, y, w = predict_split(model, cfg.data.dir, args.split, cfg.data.eval_batch_size, cfg.data.beta_pos)
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


def _cmd_experiment(args) -> int:
    from tfrec.experiments import Options, names, run_protocol, seeds_of
    from tfrec.experiments.quick import QUICK_CONFIG, prepare_quick_data

    cfg = _load(args, {}, base_yaml=QUICK_CONFIG if args.quick else None)
    if args.seeds < 1:
        raise _UsageError(f"--seeds must be >= 1. Received: --seeds={args.seeds}")
    if args.beta_pos is not None and not 0.0 < args.beta_pos <= 1.0:
        raise _UsageError(f"--beta-pos must be in (0, 1]. Received: --beta-pos={args.beta_pos}")
    if args.buckets < 1:
        raise _UsageError(f"--buckets must be >= 1. Received: --buckets={args.buckets}")
    data = args.data
    if not data and not args.quick:
        raise _UsageError("no dataset given (--data DIR, a `tfrec prepare` output; or --quick to simulate one)")
    _configure_replicas(cfg.train.replicas)
    if not data:
        data = prepare_quick_data(cfg, args.out)
    values = tuple(float(v) for v in args.values.split(",")) if args.values else None
    opts = Options(beta_pos=0.1 if args.beta_pos is None else args.beta_pos, values=values, quick=args.quick,
                   buckets=args.buckets)
    only = [s for s in args.settings.split(",") if s] if args.settings else None
    for name in (names() if args.protocol == "all" else [args.protocol]):
        run_protocol(name, data, seeds_of(args.seeds), args.out, cfg, opts, only=only)
    return 0


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


def _format_prepare(stats: Dict, output: str) -> str:
    rows = [("rows in", stats["rows_in"]), ("rows rejected", stats["rows_rejected"])]
    rows += [(f"rows {s}", stats["rows_written"].get(s, 0)) for s in ("train", "valid", "test")]
    for label, key in (("positive rate (train)", "positive_rate"),
                       ("effective positive rate (train)", "effective_positive_rate")):
        value = stats[key].get("train")
        rows.append((label, "n/a (empty split)" if value is None else value))
    return f"prepared {output}\n" + _format_table(rows)


# ------------------------------------------------------------------------------------------------ main


class _UsageError(ValueError):
    pass


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tfrec", description="Ranking-aware CTR models: data pipelines, training, evaluation.")
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
    _common(p)
    p.set_defaults(fn=_cmd_simulate)

    p = sub.add_parser("prepare", help="Criteo TSV/CSV -> validated, split, weighted TFRecords (Apache Beam)")
    p.add_argument("--input", nargs="+", help="input files or globs (split 7:2:1 by hash)")
    p.add_argument("--train", nargs="+", help="train files (instead of --input)")
    p.add_argument("--valid", nargs="+", help="validation files")
    p.add_argument("--test", nargs="+", help="test files")
    p.add_argument("--out", help="output directory")
    p.add_argument("--format", choices=["auto", "kaggle", "x1"])
    p.add_argument("--beta-pos", dest="beta_pos", type=float, help="weight of positives (KDD 2024 Eq. 15)")
    p.add_argument("--min-count", dest="min_count", type=int, help="vocabulary min count on the train split")
    p.add_argument("--runner", help="Beam runner (default DirectRunner)")
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

    from tfrec.experiments.protocols import names as protocol_names

    p = sub.add_parser("experiment", help="a KDD 2024 experiment protocol over settings and seeds: tables, plots, "
                                          "run record (resumable)")
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
