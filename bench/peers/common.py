"""What every library's worker of ``bench/bench_peers.py`` shares: the columns, the run settings, the step clock,
the test metrics and the result files.

This module imports only the standard library and NumPy, so each peer's own virtualenv (TensorFlow for DeepCTR,
PyTorch for FuxiCTR) can import it beside its library.
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import Dict, Iterable, List, Optional

import numpy as np

LABEL = "label"
DENSE = [f"I{i}" for i in range(1, 14)]
CATEGORICAL = [f"C{i}" for i in range(1, 27)]
COLUMNS = [LABEL, *DENSE, *CATEGORICAL]
SPLITS = ("train", "valid", "test")

#: The BARS / KDD 2024 DCN V2 setting on Criteo x1 (configs/criteo_x1.yaml), run by every library.
ARCH = {
    "structure": "parallel",
    "num_cross_layers": 3,
    "dnn_hidden_units": [500, 500, 500],
    "embedding_dim": 10,
    "dropout": 0.1,
    "batch_size": 4096,
    "learning_rate": 1e-3,
    "clip_norm": 10.0,
    "min_count": 10,
    # FuxiCTR's embedding_regularizer lambda (tfrec's model.embedding_l2): (lambda / 2) * sum(w^2) over the
    # embedding tables, every step; Keras' l2(c) is c * sum(w^2), so DeepCTR gets c = lambda / 2.
    "embedding_l2": 1e-5,
}


def raw_files(raw_dir: str) -> Dict[str, str]:
    """The three criteo_x1 CSV files (``label,I1..I13,C1..C26`` header) that every library prepares."""
    return {s: os.path.join(raw_dir, f"{s}.csv") for s in SPLITS}


def signed_log(x: np.ndarray) -> np.ndarray:
    """``sign(x) log(1 + |x|)``, the first half of tfrec's ``log_minmax`` numeric transform (missing -> 0)."""
    x = np.nan_to_num(np.asarray(x, dtype=np.float64), nan=0.0)
    return np.sign(x) * np.log1p(np.abs(x))


class StepClock:
    """Steady-state training examples/s from the end time of every training step (wall time, and this process's
    CPU time: all its threads, not other processes').

    A step's time is the wall time from the end of the previous step of the same epoch to its own end, so the
    input pipeline's share is counted and the validation between epochs is not. Left out: the first
    ``warmup_steps`` steps of the run (graph tracing, first allocations) and the first step of every epoch
    (its time would start at the epoch boundary).

    Args:
      warmup_steps: steps of the run left out at its start.
    """

    def __init__(self, warmup_steps: int):
        self.warmup_steps = int(warmup_steps)
        self.steps = 0
        self.timed_steps = 0
        self.timed_examples = 0
        self.timed_seconds = 0.0
        self.timed_cpu_seconds = 0.0
        self.epoch_rates: List[float] = []
        self._last: Optional[float] = None
        self._last_cpu = 0.0
        self._epoch = [0, 0.0]  # timed examples, seconds of the current epoch

    def epoch_begin(self) -> None:
        self._close_epoch()
        self._last = None

    def step_end(self, examples: int) -> None:
        now, cpu = time.perf_counter(), time.process_time()
        self.steps += 1
        if self._last is not None and self.steps > self.warmup_steps:
            self.timed_steps += 1
            self.timed_examples += int(examples)
            self.timed_seconds += now - self._last
            self.timed_cpu_seconds += cpu - self._last_cpu
            self._epoch[0] += int(examples)
            self._epoch[1] += now - self._last
        self._last, self._last_cpu = now, cpu

    def _close_epoch(self) -> None:
        if self._epoch[1] > 0:
            self.epoch_rates.append(self._epoch[0] / self._epoch[1])
        self._epoch = [0, 0.0]

    def summary(self) -> Dict[str, object]:
        self._close_epoch()
        rate = self.timed_examples / self.timed_seconds if self.timed_seconds > 0 else float("nan")
        cpu_rate = self.timed_examples / self.timed_cpu_seconds if self.timed_cpu_seconds > 0 else float("nan")
        return {"examples_per_second": rate, "examples_per_cpu_second": cpu_rate, "timed_steps": self.timed_steps,
                "steps": self.steps, "timed_seconds": self.timed_seconds,
                "timed_cpu_seconds": self.timed_cpu_seconds, "epoch_examples_per_second": self.epoch_rates}


def keras_step_clock(keras, clock: StepClock, batch_size: int, train_rows: Optional[int] = None):
    """A callback of the given Keras module (``tf_keras`` or ``tf.keras``) that feeds ``clock``.

    It reads the step's loss as a float, so the step has finished when its time is taken. ``train_rows`` (when
    the last batch of an epoch is partial, as with NumPy inputs) gives that batch its true size.
    """

    class _Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            clock.epoch_begin()

        def on_train_batch_end(self, batch, logs=None):
            float((logs or {}).get("loss", 0.0))
            n = batch_size
            if train_rows is not None:
                n = max(0, min(batch_size, train_rows - batch * batch_size))
            clock.step_end(n)

    return _Clock()


def sgemm_gflops(framework: str, n: int = 4096, k: int = 390, m: int = 500, reps: int = 20) -> float:
    """GFLOP/s of one float32 matmul of the size of DCN V2's first DNN layer (best of 3 rounds), through
    ``framework``'s own kernels (``tensorflow``: oneDNN/Eigen; ``torch``: its BLAS), so a gap in the training rate
    that is the linear algebra library's, not the CTR library's, shows."""
    if framework == "torch":
        import torch

        x, w = torch.randn(n, k), torch.randn(k, m)

        def run():
            return x @ w
    else:
        import tensorflow as tf

        x, w = tf.random.normal([n, k]), tf.random.normal([k, m])
        mm = tf.function(lambda: tf.matmul(x, w))

        def run():
            return mm().numpy()
    for _ in range(3):
        run()
    best = 0.0
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(reps):
            run()
        best = max(best, reps * 2.0 * n * k * m / (time.perf_counter() - start) / 1e9)
    return best


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Exact ROC AUC: the Mann-Whitney statistic with tied scores given their average rank."""
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    pos = float(y.sum())
    neg = float(len(y) - pos)
    if pos == 0 or neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    sorted_s = s[order]
    ranks = np.empty(len(s), dtype=np.float64)
    # average ranks (1-based) over runs of equal scores
    starts = np.flatnonzero(np.r_[True, sorted_s[1:] != sorted_s[:-1]])
    ends = np.r_[starts[1:], len(s)]
    for a, b in zip(starts, ends):
        ranks[order[a:b]] = 0.5 * (a + 1 + b)
    return float((ranks[y == 1].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


def logloss(labels: np.ndarray, probs: np.ndarray, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy, probabilities clipped to ``[eps, 1 - eps]``."""
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    p = np.clip(np.asarray(probs, dtype=np.float64).reshape(-1), eps, 1.0 - eps)
    return float(-np.mean(y * np.log(p) + (1.0 - y) * np.log(1.0 - p)))


def test_report(labels: np.ndarray, probs: np.ndarray) -> Dict[str, float]:
    """The test metrics every library is scored with, computed here from its predictions."""
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    return {"auc": auc(y, probs), "logloss": logloss(y, probs), "rows": int(len(y)), "positives": int(y.sum())}


def mean_std(values: Iterable[float]) -> Dict[str, float]:
    """Mean and sample standard deviation (0 for one value) of the finite values."""
    v = [float(x) for x in values if x is not None and math.isfinite(float(x))]
    if not v:
        return {"mean": float("nan"), "std": float("nan"), "n": 0}
    return {"mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, "n": len(v)}


def write_json(path: str, obj) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, default=float)
    os.replace(tmp, path)


def read_json(path: str):
    with open(path, encoding="utf-8") as f:
        return json.load(f)
