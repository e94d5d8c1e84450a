"""Where the time of a ``tfrec experiment --quick`` cell goes: wall and CPU time of each phase of training runs.

Runs the given settings (of the ``losses`` and ``findings`` protocols, at seed 2020) one after another in one
process, as ``tfrec experiment all --quick`` does, on the quick dataset (simulated and prepared once under
``--out``), and prints per run: the model and input set-up, the first training batch of each epoch (the first
one traces the train step), the rest of each epoch's training, each validation (the first one traces the test
step), the end-of-epoch callbacks (checkpoints, TensorBoard), the final evaluation (valid and test predictions,
isotonic regression) and the session clean-up. CPU time is the process's user + system time
(``resource.getrusage``, all threads), so it stays meaningful on a shared machine where wall time is inflated.
The first run of a process also pays the one-off costs (TensorFlow's start, the first tracing of every library
function), so compare the later runs.

Usage: python bench/bench_quick_cell.py [--out DIR] [--settings bce,combined_pair,jrc]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Clock:
    """Phase marks: (name, wall seconds, CPU seconds) since the previous mark."""

    def __init__(self):
        self.rows = []
        self._last = (time.perf_counter(), _cpu())

    def mark(self, name: str) -> None:
        now = (time.perf_counter(), _cpu())
        self.rows.append((name, now[0] - self._last[0], now[1] - self._last[1]))
        self._last = now

    def flush(self, title: str) -> None:
        wall, cpu = sum(r[1] for r in self.rows), sum(r[2] for r in self.rows)
        print(f"== {title}: wall {wall:.1f}s, cpu {cpu:.1f}s")
        for name, w, c in self.rows:
            print(f"   {name:34s} wall {w:7.2f}s  cpu {c:7.2f}s")
        self.rows = []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="/tmp/tfrec_bench/quick_cell")
    parser.add_argument("--settings", default="bce,combined_pair,jrc")
    args = parser.parse_args()
    clock = Clock()

    from tfrec.devices import configure_cpu_replicas

    configure_cpu_replicas(1)
    import tf_keras as keras

    import tfrec.train as train_lib
    from tfrec.config import load_config
    from tfrec.experiments.core import engine, registry
    from tfrec.experiments.core.cell import run_cell
    from tfrec.experiments.kdd import runner
    from tfrec.experiments.kdd.quick import QUICK_CONFIG, prepare_quick_data

    clock.mark("import TensorFlow, tfrec")
    base = load_config(QUICK_CONFIG, [])
    data = prepare_quick_data(base, args.out, printer=lambda _: None)
    clock.mark("quick data (simulate + prepare)")
    clock.flush("process start")

    class Phases(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            clock.mark("fit start")

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            if batch == 0:
                clock.mark(f"epoch {self.epoch + 1} first batch")

        def on_test_begin(self, logs=None):
            clock.mark(f"epoch {self.epoch + 1} other batches")

        def on_test_end(self, logs=None):
            clock.mark(f"epoch {self.epoch + 1} validation")

        def on_epoch_end(self, epoch, logs=None):
            clock.mark(f"epoch {epoch + 1} end callbacks")

    fit, evaluate = train_lib.fit_with_recovery, runner._evaluate

    def timed_fit(*a, **k):
        clock.mark("model, optimizer, datasets")
        k["extra_callbacks"] = list(k.get("extra_callbacks") or []) + [Phases()]
        out = fit(*a, **k)
        clock.mark("train end, best weights")
        return out

    def timed_evaluate(*a, **k):
        out = evaluate(*a, **k)
        clock.mark("evaluation (valid, test, isotonic)")
        return out

    train_lib.fit_with_recovery, runner._evaluate = timed_fit, timed_evaluate
    protocol = registry.get("losses")
    settings = {s.name: s for p in ("losses", "findings") for s in registry.get(p).settings(registry.Options())}
    for name in args.settings.split(","):
        cfg = engine.cell_config(base, settings[name], 2020, data)
        run_dir = os.path.join(args.out, "bench_runs", name)
        shutil.rmtree(run_dir, ignore_errors=True)
        clock.mark("(between runs)")
        clock.rows = []
        result = run_cell(protocol, cfg, run_dir, printer=lambda _: None)  # the KDD cell, then the session freed
        clock.mark("clear session")
        clock.flush(f"{name}: {result['train']['train_steps']} steps, test AUC {result['test']['auc']:.4f}")


if __name__ == "__main__":
    main()
