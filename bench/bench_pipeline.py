"""Beam pipeline vs a plain Python loop writing the same tf.Examples: rows/s (wall and CPU), target >= 0.5x.

* plain loop: read the raw file in binary, ``pipelines.criteo.parse_line`` each line, ``to_example`` the valid
  rows, write them with one ``tf.io.TFRecordWriter(path, "GZIP")`` (no split, no statistics, no side files);
* Beam: ``pipelines.criteo.run(PrepareConfig(inputs=[path], output=..., beta_pos=0.5, runner="DirectRunner"))``
  (validation, hash split, ``num_shards`` GZIP TFRecord shards per split, dead letter, vocabularies, transform,
  stats), i.e. everything the pipeline does, start to finish.

Both run in this process, in alternating rounds on the same file (a small warm-up of each first, not timed), so
the ratio is measured side by side; CPU time is ``time.process_time()`` of this process (the DirectRunner's
in-memory worker runs in-process), less sensitive than wall time to other work on the machine. The data is
simulated (``tfrec.simulation.simulate``) in a temporary directory unless ``--input`` is given.

Usage: python bench/bench_pipeline.py [--rows 100000] [--rounds 2] [--input train.txt] [--num-shards 4]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow as tf  # noqa: E402

from pipelines.criteo import Row, parse_line, run, to_example  # noqa: E402
from pipelines.criteo.parse import KAGGLE  # noqa: E402
from tfrec.config import PrepareConfig, SimulationConfig  # noqa: E402
from tfrec.simulation import simulate  # noqa: E402

TARGET = 0.5
BETA_POS = 0.5


def plain_loop(path: str, out_file: str) -> int:
    """The reference: one Python loop, one TFRecordWriter. Returns the rows written."""
    n = 0
    with open(path, "rb") as f, tf.io.TFRecordWriter(out_file, options="GZIP") as w:
        for line in f:
            r = parse_line(line, KAGGLE)
            if type(r) is Row:
                w.write(to_example(r, BETA_POS))
                n += 1
    return n


def beam_run(path: str, out_dir: str, num_shards: int) -> int:
    stats = run(PrepareConfig(inputs=[path], output=out_dir, beta_pos=BETA_POS, runner="DirectRunner",
                              num_shards=num_shards))
    return sum(stats["rows_written"].values())


def timed(fn, *args):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args)
    return out, time.perf_counter() - wall, time.process_time() - cpu


def count_lines(path: str) -> int:
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000, help="rows to simulate (ignored with --input)")
    ap.add_argument("--rounds", type=int, default=2, help="alternating timed rounds of each")
    ap.add_argument("--input", default="", help="an existing Kaggle-format train.txt instead of simulated rows")
    ap.add_argument("--num-shards", type=int, default=PrepareConfig.num_shards, help="prepare.num_shards")
    args = ap.parse_args(argv)

    tmp = tempfile.mkdtemp(prefix="bench_pipeline_")
    try:
        path = args.input
        if not path:
            path = os.path.join(tmp, "raw", "train.txt")
            simulate(SimulationConfig(rows=args.rows, output=path))
        rows = count_lines(path)
        warm = os.path.join(tmp, "warm.txt")
        with open(path, "rb") as src, open(warm, "wb") as dst:
            dst.writelines(line for _, line in zip(range(2000), src))
        plain_loop(warm, os.path.join(tmp, "plain_warm.tfrecord.gz"))
        beam_run(warm, os.path.join(tmp, "beam_warm"), args.num_shards)

        times = {"plain": [], "beam": []}
        for i in range(args.rounds):
            for name in ("plain", "beam") if i % 2 == 0 else ("beam", "plain"):
                if name == "plain":
                    n, wall, cpu = timed(plain_loop, path, os.path.join(tmp, "plain.tfrecord.gz"))
                else:
                    n, wall, cpu = timed(beam_run, path, os.path.join(tmp, "beam_out"), args.num_shards)
                times[name].append((wall, cpu))
                print(f"round {i + 1} {name:5s}: {rows / wall:9,.0f} rows/s wall ({wall:6.2f} s), "
                      f"{rows / cpu:9,.0f} rows/s CPU ({cpu:6.2f} s); {n} rows written", flush=True)

        print(f"\n{rows} input rows, {args.rounds} rounds, num_shards={args.num_shards}, {os.cpu_count()} CPUs")
        med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in times.items()}
        for name in ("plain", "beam"):
            wall, cpu = med[name]
            print(f"{name:5s} (median): {rows / wall:9,.0f} rows/s wall, {rows / cpu:9,.0f} rows/s CPU")
        ratios_wall = [p[0] / b[0] for p, b in zip(times["plain"], times["beam"])]
        ratios_cpu = [p[1] / b[1] for p, b in zip(times["plain"], times["beam"])]
        wall_ratio, cpu_ratio = statistics.median(ratios_wall), statistics.median(ratios_cpu)
        print(f"Beam / plain rows/s: wall {wall_ratio:.2f}x (rounds: {', '.join(f'{r:.2f}' for r in ratios_wall)}), "
              f"CPU {cpu_ratio:.2f}x (rounds: {', '.join(f'{r:.2f}' for r in ratios_cpu)}); "
              f"target >= {TARGET}x: {'met' if wall_ratio >= TARGET else 'NOT met'} (wall)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
