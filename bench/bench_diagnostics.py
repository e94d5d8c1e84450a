"""Cost of the gradient diagnostics: DCN V2 train steps at batch 4096 with and without them, side by side.

The model is DCN V2 in the BARS setting of the KDD 2024 paper (embedding 10, 3 full-rank cross layers, DNN
[500, 500, 500], Adam 1e-3 with global clip 10, weighted BCE). Two copies with the same initial weights run the
same in-memory batches: one with ``enable_gradient_diagnostics(False)`` (the plain ``minimize`` step), one with it
on (the per-logit gradient percentiles and the layer / global gradient norms of ``tfrec.metrics.gradients``).
Rounds alternate between the two so machine noise hits both alike. Every step's logs are pulled to the host, as
Keras does when a callback has batch hooks (tfrec's training driver always has some), so both sides pay the same
synchronisation; the CSV / TensorBoard writing of the ``GradientDiagnostics`` callback is not included.

Usage: python bench/bench_diagnostics.py [--quick] [--rows N] [--batch B] [--steps S] [--rounds R] [--replicas K]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfrec.devices import configure_cpu_replicas  # noqa: E402

configure_cpu_replicas(2)

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

from bench.common import in_memory, prepared_dataset, print_json  # noqa: E402
from tfrec import data as data_lib  # noqa: E402
from tfrec import losses  # noqa: E402
from tfrec.config import load_config  # noqa: E402
from tfrec.devices import make_strategy  # noqa: E402
from tfrec.train import build_model  # noqa: E402


def make_runner(cfg, strategy, batches, init, diagnostics):
    with strategy.scope():
        model = build_model(cfg)
        model(batches[0][0], training=False)
        model.set_weights(init)
        model.compile(optimizer=keras.optimizers.Adam(1e-3, global_clipnorm=10.0), loss=losses.get("weighted_bce"))
    model.enable_gradient_diagnostics(diagnostics)
    dist = iter(strategy.experimental_distribute_dataset(in_memory(batches)))
    step = model.make_train_function()

    def run(steps):
        logs = None
        for _ in range(steps):
            logs = {k: float(v) for k, v in step(dist).items()}  # per-step host sync, as under fit's callbacks
        return logs

    return run


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small data and few steps (a smoke run, noisy numbers)")
    ap.add_argument("--rows", type=int, default=None, help="simulated rows (default 200000; --quick 30000)")
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--steps", type=int, default=None, help="steps per round (default 20; --quick 4)")
    ap.add_argument("--rounds", type=int, default=None, help="rounds per variant (default 5; --quick 2)")
    ap.add_argument("--replicas", type=int, default=1, help="MirroredStrategy replicas (default 1)")
    args = ap.parse_args(argv)
    rows = args.rows or (30_000 if args.quick else 200_000)
    steps = args.steps or (4 if args.quick else 20)
    rounds = args.rounds or (2 if args.quick else 5)

    data_dir = prepared_dataset(rows)
    cfg = load_config(None, [f"data.dir={data_dir}", f"data.batch_size={args.batch}"])  # BARS model defaults
    schema = data_lib.load_schema(data_dir)
    files = data_lib.split_files(data_dir, "train")
    batches = list(data_lib.make_dataset(files, schema, args.batch, training=True, repeat=True).take(4))
    strategy = make_strategy(args.replicas)
    with strategy.scope():
        base = build_model(cfg)
        base(batches[0][0], training=False)
    init = base.get_weights()
    runners = {"plain": make_runner(cfg, strategy, batches, init, False),
               "diagnostics": make_runner(cfg, strategy, batches, init, True)}
    for run in runners.values():
        run(2)  # trace and warm up
    seconds = {name: [] for name in runners}
    last = {}
    for _ in range(rounds):
        for name, run in runners.items():
            start = time.perf_counter()
            last[name] = run(steps)
            seconds[name].append((time.perf_counter() - start) / steps)
    device = "GPU" if tf.config.list_logical_devices("GPU") else "CPU"
    report = {name: {"best_ms_per_step": 1e3 * min(v), "median_ms_per_step": 1e3 * statistics.median(v),
                     "best_examples_per_second": args.batch / min(v)} for name, v in seconds.items()}
    print_json(f"DCN V2 (BARS) train step, batch {args.batch}, {args.replicas} replica(s) on {device}, "
               f"{steps} steps x {rounds} rounds", report)
    diag = {k: v for k, v in last["diagnostics"].items() if k.startswith("grad_")}
    print_json("diagnostics of the last step", diag)
    best = min(seconds["diagnostics"]) / min(seconds["plain"])
    med = statistics.median(seconds["diagnostics"]) / statistics.median(seconds["plain"])
    print(f"overhead: diagnostics / plain = {best:.3f}x (best round), {med:.3f}x (median round)")


if __name__ == "__main__":
    main()
