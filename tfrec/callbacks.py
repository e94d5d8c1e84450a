"""Keras callbacks of the training driver: NaN guard, throughput and progress lines."""

from __future__ import annotations

import math
import time
from typing import Callable, Dict, List, Optional

import tf_keras as keras


class NaNGuard(keras.callbacks.Callback):
    """Stops training at the first non-finite loss and remembers where it happened.

    Keras' ``TerminateOnNaN`` stops silently; the driver reads :attr:`event` and raises an error that says where
    the loss broke and what to check.
    """

    def __init__(self):
        super().__init__()
        self.event: Optional[Dict[str, float]] = None
        self._epoch = 0
        self._last_finite: Optional[float] = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("total_loss", (logs or {}).get("loss"))
        if loss is None:
            return
        loss = float(loss)
        if math.isfinite(loss):
            self._last_finite = loss
            return
        self.event = {"epoch": self._epoch + 1, "step": batch + 1, "loss": loss, "last_finite": self._last_finite}
        self.model.stop_training = True


class Throughput(keras.callbacks.Callback):
    """Training examples per second, validation time excluded.

    Args:
      global_batch_size: examples per step (all replicas).
    """

    def __init__(self, global_batch_size: int):
        super().__init__()
        self.global_batch_size = global_batch_size
        self.steps = 0
        self.train_seconds = 0.0
        self.epoch_rates: List[float] = []
        self._epoch_start = 0.0
        self._epoch_steps = 0
        self._val_start = 0.0
        self._val_seconds = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()
        self._epoch_steps = 0
        self._val_seconds = 0.0

    def on_train_batch_end(self, batch, logs=None):
        self._epoch_steps += 1

    def on_test_begin(self, logs=None):
        self._val_start = time.perf_counter()

    def on_test_end(self, logs=None):
        self._val_seconds += time.perf_counter() - self._val_start

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._epoch_start - self._val_seconds
        self.steps += self._epoch_steps
        self.train_seconds += seconds
        if seconds > 0:
            self.epoch_rates.append(self._epoch_steps * self.global_batch_size / seconds)

    @property
    def examples_per_second(self) -> float:
        """Over all epochs (the first includes graph tracing)."""
        return self.steps * self.global_batch_size / self.train_seconds if self.train_seconds > 0 else float("nan")


class ProgressLogger(keras.callbacks.Callback):
    """Prints one line at most every ``every_seconds`` during an epoch, and one at each epoch end.

    Args:
      every_seconds: minimum seconds between step lines (0: epoch lines only).
      global_batch_size: examples per step, for the examples/s figure.
      epochs: total epochs, for the ``epoch i/n`` label.
      printer: where lines go.
    """

    def __init__(self, every_seconds: float, global_batch_size: int, epochs: int,
                 printer: Callable[[str], None] = print):
        super().__init__()
        self.every_seconds = every_seconds
        self.global_batch_size = global_batch_size
        self.epochs = epochs
        self.printer = printer
        self._epoch = 0
        self._start = 0.0
        self._last = 0.0
        self._steps = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._start = self._last = time.perf_counter()
        self._steps = 0

    def on_train_batch_end(self, batch, logs=None):
        self._steps += 1
        now = time.perf_counter()
        if self.every_seconds and now - self._last >= self.every_seconds:
            self._last = now
            rate = self._steps * self.global_batch_size / max(now - self._start, 1e-9)
            loss = (logs or {}).get("loss", float("nan"))
            self.printer(f"  epoch {self._epoch + 1}/{self.epochs}  step {batch + 1}  loss {float(loss):.5f}  "
                         f"{rate:,.0f} examples/s")

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        seconds = time.perf_counter() - self._start
        keys = ["loss", "val_loss", "val_auc", "val_weighted_auc", "val_logloss", "val_weighted_logloss"]
        parts = [f"{k} {float(logs[k]):.5f}" for k in keys if k in logs]
        lr = logs.get("lr", logs.get("learning_rate"))
        if lr is not None:
            parts.append(f"lr {float(lr):.2g}")
        self.printer(f"  epoch {epoch + 1}/{self.epochs} done in {seconds:.1f}s: " + ", ".join(parts))
