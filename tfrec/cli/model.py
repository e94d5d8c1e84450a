"""The commands on a trained model: ``train``, ``evaluate``, ``calibration``, ``export``, ``item-embeddings``."""

from __future__ import annotations

import os
import sys

from tfrec.cli.common import (RUN_ERROR, UsageError, add_config_args, configure_replicas, format_table, load,
                              load_run, run_family)


def _cmd_train(args) -> int:
    cfg = load(args, {"data": "data.dir", "model_dir": "train.model_dir", "replicas": "train.replicas",
                      "epochs": "train.epochs"})
    if cfg.data.dir and not cfg.train.model_dir:
        raise UsageError("no model directory given (--model-dir or train.model_dir)")
    configure_replicas(cfg.train.replicas)
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
    cfg = load_run(args, {"data": "data.dir", "model_dir": "train.model_dir"})
    if not cfg.train.model_dir:
        raise UsageError("no model directory given (--model-dir or train.model_dir)")
    family = run_family(cfg)
    report = family.evaluate(cfg, split=args.split, output=args.out)
    print(format_table(family.report_rows(report)))
    return 0


def _cmd_calibration(args) -> int:
    cfg = load_run(args, {"data": "data.dir", "model_dir": "train.model_dir"})
    if not cfg.train.model_dir:
        raise UsageError("no model directory given (--model-dir or train.model_dir)")
    if args.buckets < 1:
        raise UsageError(f"--buckets must be >= 1. Received: --buckets={args.buckets}")
    family = run_family(cfg)
    if not family.calibration:
        raise UsageError(f"calibration buckets one probability per row; {cfg.train.model_dir} is a {family.name} "
                         "run")
    from tfrec.evaluate import predict_split
    from tfrec.metrics.calibration import calibration_by_bucket, overall_bias, write_csv
    from tfrec.metrics.calibration import format_table as bucket_table

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
    print(bucket_table(rows))
    if len(rows) < args.buckets:
        print(f"{len(rows)} bucket(s) instead of {args.buckets}: a bucket needs at least one positive, and samples "
              "with equal predictions share a bucket")
    print(f"overall bias {overall_bias(y, p, w):+.5f}; table written to {path}")
    return 0


def _cmd_export(args) -> int:
    cfg = load_run(args, {"data": "data.dir", "model_dir": "train.model_dir"})
    if not cfg.train.model_dir:
        raise UsageError("no model directory given (--model-dir or train.model_dir)")
    if not os.path.isdir(cfg.train.model_dir):
        raise UsageError(f"model directory not found: {cfg.train.model_dir}")
    if not args.base_path:
        raise UsageError("no export base path given (--base-path)")
    if os.path.exists(args.base_path) and not os.path.isdir(args.base_path):
        raise UsageError(f"export base path is not a directory: {args.base_path}")
    if args.warmup_rows < 1:
        raise UsageError(f"--warmup-rows must be >= 1. Received: --warmup-rows={args.warmup_rows}")
    family = run_family(cfg)
    if args.items and not family.item_embeddings:
        raise UsageError(f"--items is for pre-ranking (hybrid-sample) datasets only; {cfg.train.model_dir} is a "
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
        raise UsageError(f"export version directory not found: {args.export_dir}")
    if not args.items or not args.out:
        raise UsageError("give the item table (--items items.jsonl) and the output directory (--out)")
    import tensorflow as tf

    from export.preranking import ITEM_EMBEDDINGS_FILE, read_item_table, write_item_embeddings

    loaded = tf.saved_model.load(args.export_dir)
    if "item_embedding" not in loaded.signatures:
        raise UsageError(f"{args.export_dir} has no item_embedding signature (not a pre-ranking export)")
    info = write_item_embeddings(loaded.signatures["item_embedding"], read_item_table(args.items), args.out,
                                 batch_size=args.batch_size, source=args.items)
    print(f"{info['count']} item embeddings of dim {info['dim']} written to "
          f"{os.path.join(args.out, ITEM_EMBEDDINGS_FILE)}")
    return 0


def add_train(sub) -> None:
    p = sub.add_parser("train", help="train a model on a prepared dataset under MirroredStrategy")
    p.add_argument("--data", help="prepared dataset directory")
    p.add_argument("--model-dir", dest="model_dir", help="checkpoints, logs and the best weights go here")
    p.add_argument("--replicas", type=int)
    p.add_argument("--epochs", type=int)
    add_config_args(p)
    p.set_defaults(fn=_cmd_train)


def add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="AUC and logloss (unweighted and weighted) of a trained model")
    p.add_argument("--data", help="prepared dataset directory")
    p.add_argument("--model-dir", dest="model_dir", help="model directory of a finished `tfrec train`")
    p.add_argument("--split", default="test", choices=["train", "valid", "test"])
    p.add_argument("--out", help="metrics.json path (default <model_dir>/metrics.json; one entry per split)")
    add_config_args(p)
    p.set_defaults(fn=_cmd_evaluate)


def add_calibration(sub) -> None:
    p = sub.add_parser("calibration", help="calibration bias per pCTR bucket of equal positive frequency "
                                           "(KDD 2024 Fig. 8) of a trained model")
    p.add_argument("--data", help="prepared dataset directory")
    p.add_argument("--model-dir", dest="model_dir", help="model directory of a finished `tfrec train`")
    p.add_argument("--split", default="test", choices=["train", "valid", "test"])
    p.add_argument("--buckets", type=int, default=45, help="buckets of equal positive frequency (default 45)")
    p.add_argument("--unweighted", action="store_true",
                   help="ignore the weight feature (default: weight samples by it, as training does)")
    p.add_argument("--output", help="CSV path (default <model_dir>/calibration_<split>.csv)")
    add_config_args(p)
    p.set_defaults(fn=_cmd_calibration)


def add_export(sub) -> None:
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
    add_config_args(p)
    p.set_defaults(fn=_cmd_export)


def add_item_embeddings(sub) -> None:
    p = sub.add_parser("item-embeddings", help="pre-ranking: item embeddings of an item table from an export's "
                                               "item_embedding signature")
    p.add_argument("--export-dir", dest="export_dir", help="an exported version directory (models/hccp/1)")
    p.add_argument("--items", help="item table (items.jsonl: item_id, category, price per line)")
    p.add_argument("--out", help="output directory (item_embeddings.tfrecord, item_embeddings.json)")
    p.add_argument("--batch-size", dest="batch_size", type=int, default=4096, help="items per call (default 4096)")
    p.set_defaults(fn=_cmd_item_embeddings)
