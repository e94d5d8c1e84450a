"""Reader benchmark: is the input pipeline fast enough to keep DCN V2 training busy?

Measured side by side in one process, on the same prepared data, at the same global batch:

1. reader:            tf.data (interleave shards, batch, parse_example, prefetch) -> examples/s
2. reader + lookups:  the same plus the model's preprocessing (vocabulary lookups, numeric transforms)
3. train step:        DCN V2 training steps on batches already in memory (no input cost) -> examples/s

Target: reader >= 1.5 x train-step rate. Usage: python bench/bench_reader.py [--rows N] [--batch B]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfrec.devices import configure_cpu_replicas  # noqa: E402

configure_cpu_replicas(1)

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

from bench.common import in_memory, prepared_dataset, print_json  # noqa: E402
from tfrec import data as data_lib  # noqa: E402
from tfrec import losses  # noqa: E402
from tfrec.config import load_config  # noqa: E402
from tfrec.train import build_model  # noqa: E402


def rate(iterable_fn, batch: int, warmup: int, steps: int) -> float:
    it = iter(iterable_fn())
    for _ in range(warmup):
        next(it)
    start = time.perf_counter()
    for _ in range(steps):
        next(it)
    return steps * batch / (time.perf_counter() - start)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args(argv)

    data_dir = prepared_dataset(args.rows)
    cfg = load_config(None, [f"data.dir={data_dir}", f"data.batch_size={args.batch}"])
    schema = data_lib.load_schema(data_dir)
    files = data_lib.split_files(data_dir, "train")

    def reader():
        return data_lib.make_dataset(files, schema, args.batch, training=True, shuffle_buffer=0,
                                     repeat=True, cycle_length=cfg.data.cycle_length)

    model = build_model(cfg)
    model.compile(optimizer=keras.optimizers.Adam(1e-3, global_clipnorm=10.0), loss=losses.get("weighted_bce"))
    first = next(iter(reader()))
    model(first[0], training=False)

    @tf.function
    def lookups(features):
        return model.embedding(features)

    def reader_with_lookups():
        return (lookups(f) for f, _, _ in reader())

    memory = iter(in_memory(list(reader().take(8))))
    step_fn = model.make_train_function()

    def train_steps():
        while True:
            logs = step_fn(memory)
            yield float(logs["loss"])  # waits for the step

    results = {}
    for _ in range(2):  # alternate, twice, to average out the noise of a shared machine
        results.setdefault("reader", []).append(rate(reader, args.batch, 3, args.steps))
        results.setdefault("reader_with_lookups", []).append(rate(reader_with_lookups, args.batch, 3, args.steps))
        results.setdefault("train_step", []).append(rate(train_steps, args.batch, 3, args.steps))
    best = {k: max(v) for k, v in results.items()}
    print_json("examples/s (best of 2 rounds)", best)
    print(f"reader / train step            = {best['reader'] / best['train_step']:.2f}x  (target >= 1.5x)")
    print(f"reader+lookups / train step    = {best['reader_with_lookups'] / best['train_step']:.2f}x")
    print(f"lookups cost: reader+lookups / reader = {best['reader_with_lookups'] / best['reader']:.2f}x")


if __name__ == "__main__":
    main()
