"""Shared set-up of the benchmarks: a simulated, prepared Criteo-shaped dataset (cached between runs)."""

from __future__ import annotations

import json
import os
import time

DEFAULT_DIR = os.environ.get("TFREC_BENCH_DIR", "/tmp/tfrec_bench")


def prepared_dataset(rows: int, beta_pos: float = 1.0, root: str = DEFAULT_DIR, shards: int = 4) -> str:
    """Simulates ``rows`` rows and prepares them with the Beam pipeline, once per (rows, beta_pos, shards)."""
    from pipelines.criteo import run
    from tfrec.config import PrepareConfig, SimulationConfig
    from tfrec.simulation import simulate

    base = os.path.join(root, f"criteo_{rows}_{beta_pos}_{shards}")
    data_dir = os.path.join(base, "data")
    if os.path.exists(os.path.join(data_dir, "stats.json")):
        return data_dir
    raw = os.path.join(base, "raw", "train.txt")
    os.makedirs(os.path.dirname(raw), exist_ok=True)
    simulate(SimulationConfig(rows=rows, output=raw))
    run(PrepareConfig(inputs=[raw], output=data_dir, beta_pos=beta_pos, num_shards=shards))
    return data_dir


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def print_json(name: str, obj) -> None:
    print(f"{name}: " + json.dumps(obj, indent=2, default=float))


def in_memory(batches):
    """A dataset that cycles over already-parsed batches held in memory (no file reading, no parsing)."""
    import functools

    import tensorflow as tf

    parts = [tf.data.Dataset.from_tensors(b) for b in batches]
    return functools.reduce(lambda a, b: a.concatenate(b), parts).cache().repeat()


class HostLoad:
    """The host's load over a benchmark run, from ``/proc/stat``: the share of CPU time the hypervisor gave to other
    guests (``steal``) and the share this guest was busy. On a shared virtual machine a run with high steal measures
    the neighbours as much as the code; the benchmarks print this beside their ratios.

    Example::

        load = HostLoad()
        ...            # the measurement
        print(load.read())   # {'steal_percent': 2.1, 'busy_percent': 61.0, 'load_average_start_end': [...]}
    """

    def __init__(self):
        self._start, self._load = self._ticks(), os.getloadavg()

    @staticmethod
    def _ticks():
        try:
            with open("/proc/stat") as f:
                fields = f.readline().split()[1:]
        except OSError:  # not Linux: nothing to read
            return None
        return [int(x) for x in fields]

    def read(self) -> dict:
        out = {"load_average_start_end": [self._load, os.getloadavg()]}
        end = self._ticks()
        if self._start is not None and end is not None:
            d = [b - a for a, b in zip(self._start, end)]
            total = sum(d[:8]) or 1  # user nice system idle iowait irq softirq steal
            out["steal_percent"] = 100.0 * d[7] / total if len(d) > 7 else None
            out["busy_percent"] = 100.0 * (total - d[3] - d[4]) / total
        return out
