"""``tfrec demo``: the whole flow on simulated data, end to end, in a few minutes on a laptop.

1. simulate Criteo-shaped click logs (Kaggle ``train.txt`` format, known true click probability);
2. prepare them with the Beam pipeline (validation, 7:2:1 hash split, vocabularies, beta_pos weights, sharded
   GZIP TFRecords);
3. train DCN V2 under MirroredStrategy (2 logical CPU replicas by default) with beta_pos-weighted BCE;
4. evaluate on the test split and print AUC, logloss, weighted AUC, weighted logloss, rows per split, the
   effective positive rate and the training throughput.

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


def run_demo(cfg: RunConfig, out_dir: str, printer: Callable[[str], None] = print) -> Dict[str, object]:
    """Runs the demo in ``out_dir`` (raw/, data/, model/) and returns the reported numbers."""
    from pipelines.criteo import run as prepare
    from tfrec.evaluate import evaluate
    from tfrec.simulation import simulate
    from tfrec.train import train

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
        printer(f"[{i}/4] {text}  (t = {time.perf_counter() - start:.0f}s)")

    step(1, f"simulating {cfg.simulation.rows:,} Criteo-shaped rows -> {raw}")
    os.makedirs(os.path.dirname(raw), exist_ok=True)
    sim = simulate(cfg.simulation)
    printer(f"      positive rate {sim.positive_rate:.4f}; AUC of the true click probability {sim.truth_auc:.4f}")

    step(2, f"Beam pipeline ({cfg.prepare.runner}) -> TFRecords with beta_pos={cfg.prepare.beta_pos} in {data_dir}")
    stats = prepare(cfg.prepare)
    printer("      rows: " + ", ".join(f"{s} {stats['rows_written'].get(s, 0):,}" for s in ("train", "valid", "test"))
            + f"; rejected {stats['rows_rejected']:,}")

    step(3, f"training DCN V2 ({cfg.model.structure}, {cfg.model.num_cross_layers} cross layers, DNN "
            f"{cfg.model.dnn_hidden_units}) on {cfg.train.replicas} replicas, batch {cfg.data.batch_size}, "
            f"{cfg.train.epochs} epoch(s)")
    result = train(cfg, printer=printer)

    step(4, "evaluating on the test split")
    report = evaluate(cfg, split="test", model=result.model)
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
        ("wall time", f"{time.perf_counter() - start:.0f}s"),
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
    printer(f"\n  artifacts: {out_dir} (metrics in {os.path.join(model_dir, 'metrics.json')})")
    out = {"report": report, "stats": stats, "train": result.summary}
    with open(os.path.join(out_dir, "demo_summary.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, indent=2, default=str)
    return out
