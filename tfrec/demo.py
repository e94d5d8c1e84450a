"""``tfrec demo``: the whole flow on simulated data, end to end, in a few minutes on a laptop.

1. simulate Criteo-shaped click logs (Kaggle ``train.txt`` format, known true click probability);
2. prepare them with the Beam pipeline (validation, 7:2:1 hash split, vocabularies, beta_pos weights, sharded
   GZIP TFRecords);
3. train DCN V2 under MirroredStrategy (2 logical CPU replicas by default) with beta_pos-weighted BCE;
4. evaluate on the test split and print AUC, logloss, weighted AUC, weighted logloss, rows per split, the
   effective positive rate and the training throughput;
5. export the trained model as the next SavedModel version under ``<out>/models/ctr`` (TF Serving signatures,
   warmup records; :func:`export.export_model`);
6. serve that export on a free local port (:class:`serving.server.ModelServer`), fetch predictions for a few test
   rows over gRPC (:class:`serving.client.PredictionClient`), print them next to the Keras model's own
   predictions on the same raw rows, and stop the server.

The fresh-process validation of ``tfrec export --validate`` is left out (it adds a second TensorFlow start-up);
step 6 compares the served predictions with the in-process ones instead.

The demo's settings are ``tfrec/configs/demo.yaml``; ``--set`` overrides any of them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Callable, Dict

from tfrec.config import RunConfig

DEMO_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "demo.yaml")
STEPS = 6
SERVED_ROWS = 5
MODEL_NAME = "ctr"


def run_demo(cfg: RunConfig, out_dir: str, printer: Callable[[str], None] = print) -> Dict[str, object]:
    """Runs the demo in ``out_dir`` (raw/, data/, model/, models/ctr/) and returns the reported numbers."""
    from pipelines.criteo import run as prepare
    from tfrec.families import get
    from tfrec.simulation import simulate

    start = time.perf_counter()
    os.makedirs(out_dir, exist_ok=True)
    raw = os.path.join(out_dir, "raw", "train.txt")
    data_dir = os.path.join(out_dir, "data")
    model_dir = os.path.join(out_dir, "model")
    cfg.simulation = dataclasses.replace(cfg.simulation, output=raw)
    cfg.prepare = dataclasses.replace(cfg.prepare, inputs=[raw], train=[], valid=[], test=[], output=data_dir)
    cfg.data = dataclasses.replace(cfg.data, dir=data_dir)
    cfg.train = dataclasses.replace(cfg.train, model_dir=model_dir)

    def step(i: int, text: str) -> None:
        printer(f"[{i}/{STEPS}] {text}  (t = {time.perf_counter() - start:.0f}s)")

    step(1, f"simulating {cfg.simulation.rows:,} Criteo-shaped rows -> {raw}")
    os.makedirs(os.path.dirname(raw), exist_ok=True)
    sim = simulate(cfg.simulation)
    printer(f"      positive rate {sim.positive_rate:.4f}; AUC of the true click probability {sim.truth_auc:.4f}")

    step(2, f"Beam pipeline ({cfg.prepare.runner}) -> TFRecords with beta_pos={cfg.prepare.beta_pos} in {data_dir}")
    stats = prepare(cfg.prepare)
    printer("      rows: " + ", ".join(f"{s} {stats['rows_written'].get(s, 0):,}" for s in ("train", "valid", "test"))
            + f"; rejected {stats['rows_rejected']:,}")

    step(3, f"training DCN V2 ({cfg.model.structure}, {cfg.model.num_cross_layers} cross layers, DNN "
            f"{cfg.model.dnn_hidden_units}) on {cfg.train.replicas} replicas, "
            f"batch {get('pointwise').resolve(cfg).data.batch_size}, {cfg.train.epochs} epoch(s)")
    result = get("pointwise").train(cfg, printer=printer)

    step(4, "evaluating on the test split")
    report = get("pointwise").evaluate(cfg, split="test", model=result.model)
    rate = result.summary["epoch_examples_per_second"]
    steady = rate[-1] if rate else result.summary["train_examples_per_second"]
    table = [
        ("AUC", report["auc"]),
        ("logloss", report["logloss"]),
        ("weighted AUC", report["weighted_auc"]),
        ("weighted logloss", report["weighted_logloss"]),
        ("rows train / valid / test", " / ".join(f"{stats['rows_written'].get(s, 0):,}"
                                                 for s in ("train", "valid", "test"))),
        ("rows rejected", stats["rows_rejected"]),
        ("positive rate (test)", report["positive_rate"]),
        ("effective positive rate (test)", report["effective_positive_rate"]),
        ("beta_pos", cfg.prepare.beta_pos),
        ("train examples/s (last epoch)", steady),
        ("replicas", result.summary["replicas"]),
        ("epochs", result.summary["epochs_run"]),
        ("wall time (steps 1-4)", f"{time.perf_counter() - start:.0f}s"),
    ]
    width = max(len(k) for k, _ in table)
    printer("")
    printer(f"  {'metric':<{width}}  value")
    printer(f"  {'-' * width}  {'-' * 12}")
    for k, v in table:
        if isinstance(v, float):
            v = f"{v:,.0f}" if "examples" in k else f"{v:.5f}"
        elif isinstance(v, int):
            v = f"{v:,}"
        printer(f"  {k:<{width}}  {v}")

    export_base = os.path.join(out_dir, "models", MODEL_NAME)
    step(5, f"exporting the SavedModel for TF Serving -> {export_base}")
    served = export_and_serve(result.model, data_dir, export_base, step, printer)
    printer(f"\n  artifacts: {out_dir} (metrics in {os.path.join(model_dir, 'metrics.json')}; "
            f"SavedModel in {served['export_path']})")
    printer(f"  total wall time {time.perf_counter() - start:.0f}s")
    out = {"report": report, "stats": stats, "train": result.summary, "serving": served}
    with open(os.path.join(out_dir, "demo_summary.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, indent=2, default=str)
    return out


def export_and_serve(model, data_dir: str, export_base: str, step: Callable[[int, str], None],
                     printer: Callable[[str], None] = print, rows: int = SERVED_ROWS) -> Dict[str, object]:
    """Steps 5 and 6: exports ``model``, serves the export over gRPC, compares served and in-process predictions.

    Args:
      model: the trained Keras model.
      data_dir: the prepared dataset (schema, warmup rows from valid, compared rows from test).
      export_base: the model's TF Serving base path; the export lands as its next version.
      step: prints a step header.
      printer: prints a line.
      rows: test rows compared.

    Returns:
      ``{"export_path", "version", "signatures", "address", "rows", "grpc", "in_process", "max_abs_diff"}``
      (the two prediction lists are the ``ctr`` probabilities of the compared rows).
    """
    import numpy as np
    import tensorflow as tf

    from export import export_model
    from export.signatures import SignatureSet
    from export.warmup import dataset_examples
    from serving.client import PredictionClient
    from serving.manager import ModelSource
    from serving.server import ModelServer
    from tfrec import data as data_lib

    schema = data_lib.load_schema(data_dir)
    result = export_model(model, export_base, schema, data_dir=data_dir, model_name=MODEL_NAME)
    printer(f"      version {result.version} at {result.path}: signatures {', '.join(result.signatures)}; "
            f"{result.warmup_records} warmup records")
    serialized = dataset_examples(data_dir, schema, rows, splits=("test",))
    # In process: the Keras model on the same raw rows, parsed with the dataset's schema.
    features = SignatureSet(model, schema).parse(tf.constant(serialized, tf.string))
    local = np.asarray(model(features, training=False)["probability"], np.float64).reshape(-1)

    server = ModelServer([ModelSource(MODEL_NAME, export_base)], port=0, poll_seconds=0).start()
    try:
        step(6, f"serving version {result.version} on {server.address} (gRPC PredictionService); "
                f"{len(serialized)} test rows over gRPC vs in process")
        with PredictionClient(server.address, timeout=30) as client:
            remote = np.asarray(client.predict_examples(MODEL_NAME, serialized)["ctr"], np.float64).reshape(-1)
    finally:
        server.stop()
    diff = np.abs(remote - local)
    printer(f"  {'row':>4}  {'gRPC p(click)':>14}  {'in-process':>12}  {'|diff|':>9}")
    for i in range(len(serialized)):
        printer(f"  {i:>4}  {remote[i]:>14.6f}  {local[i]:>12.6f}  {diff[i]:>9.1e}")
    printer(f"      server stopped; max |diff| {diff.max():.1e}")
    return {"export_path": result.path, "version": result.version, "signatures": result.signatures,
            "address": server.address, "rows": len(serialized), "grpc": remote.tolist(),
            "in_process": local.tolist(), "max_abs_diff": float(diff.max())}
