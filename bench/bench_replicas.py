"""DCN V2 training throughput at batch 4096: MirroredStrategy over 2 logical CPU replicas vs 1 device.

Both strategies run in one process (the host CPU is split into 2 logical devices first; the 1-replica strategy
uses the first of them), on the same in-memory batches, alternating rounds so machine noise hits both alike.
On a CPU host the two logical devices share the same cores, so the ratio shows the overhead (or gain) of the
replica split itself, not a hardware speed-up. Usage: python bench/bench_replicas.py [--rows N] [--steps S]
"""

from __future__ import annotations

import argparse
import os
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


def make_runner(cfg, replicas, batches):
    strategy = make_strategy(replicas)
    with strategy.scope():
        model = build_model(cfg)
        model.compile(optimizer=keras.optimizers.Adam(1e-3, global_clipnorm=10.0), loss=losses.get("weighted_bce"))
    dist = iter(strategy.experimental_distribute_dataset(in_memory(batches)))
    step = model.make_train_function()

    def run(steps):
        for _ in range(steps):
            logs = step(dist)
        float(logs["loss"])  # wait for the last step

    return run


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)

    data_dir = prepared_dataset(args.rows)
    cfg = load_config(None, [f"data.dir={data_dir}", f"data.batch_size={args.batch}"])
    schema = data_lib.load_schema(data_dir)
    files = data_lib.split_files(data_dir, "train")
    batches = list(data_lib.make_dataset(files, schema, args.batch, training=True, repeat=True).take(4))
    runners = {r: make_runner(cfg, r, batches) for r in (1, 2)}
    for run in runners.values():
        run(2)  # trace and warm up
    rates = {1: [], 2: []}
    for _ in range(args.rounds):
        for r, run in runners.items():
            start = time.perf_counter()
            run(args.steps)
            rates[r].append(args.steps * args.batch / (time.perf_counter() - start))
    best = {f"{r}_replica(s)": max(v) for r, v in rates.items()}
    print_json(f"DCN V2 training examples/s at batch {args.batch} (best of {args.rounds} rounds)", best)
    print(f"2 replicas / 1 replica = {max(rates[2]) / max(rates[1]):.2f}x")


if __name__ == "__main__":
    main()
