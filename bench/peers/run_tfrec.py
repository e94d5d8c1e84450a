"""tfrec's worker of ``bench/bench_peers.py``: trains DCN V2 with ``tfrec.train`` on a dataset written by
``tfrec prepare`` (configs/criteo_x1.yaml) and predicts the test split with ``tfrec.evaluate.predict_split``.

Runs in tfrec's own virtualenv. Usage (the driver calls it):
    python bench/peers/run_tfrec.py --data DIR --model-dir DIR --seed 2020 --epochs 3 --result out.json
"""

from __future__ import annotations

import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from bench.peers.common import ARCH, StepClock, keras_step_clock, test_report, write_json  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--epochs", type=int, required=True)
    ap.add_argument("--warmup-steps", type=int, default=10)
    ap.add_argument("--result", required=True)
    args = ap.parse_args(argv)

    start = time.perf_counter()
    from tfrec.config import load_config
    from tfrec.devices import configure_cpu_replicas

    # The paper's config, as `tfrec train --config configs/criteo_x1.yaml` runs it; only the run's own paths,
    # epochs and seed change. Early stopping cannot end a run of `epochs` epochs before the peers' runs end.
    cfg = load_config(os.path.join(ROOT, "configs", "criteo_x1.yaml"), [
        f"data.dir={args.data}", f"train.model_dir={args.model_dir}", f"train.epochs={args.epochs}",
        f"train.seed={args.seed}", f"train.early_stop_patience={args.epochs}", "train.verbose=0",
        "train.log_every_seconds=0"])
    assert cfg.data.batch_size == ARCH["batch_size"] and cfg.model.dnn_hidden_units == ARCH["dnn_hidden_units"]
    configure_cpu_replicas(cfg.train.replicas)
    import tf_keras as keras

    from tfrec.evaluate import predict_split
    from tfrec.train import train

    clock = StepClock(args.warmup_steps)
    result = train(cfg, printer=lambda _: None,
                   extra_callbacks=[keras_step_clock(keras, clock, cfg.data.batch_size)])
    trained = time.perf_counter()
    probs, labels, _ = predict_split(result.model, cfg.data.dir, "test", cfg.data.eval_batch_size)
    write_json(args.result, {
        "library": "tfrec", "seed": args.seed, "epochs": args.epochs, "train": clock.summary(),
        "test": test_report(labels, probs), "history": result.history,
        "own_train_examples_per_second": result.summary["train_examples_per_second"],
        "seconds": {"setup_and_train": trained - start, "predict_test": time.perf_counter() - trained},
    })


if __name__ == "__main__":
    main()
