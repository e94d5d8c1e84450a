"""Keras callbacks of the training driver: exact validation metrics, NaN guard, throughput and progress lines,
gradient diagnostics, and TensorBoard without per-batch cost when it writes per epoch.

The batch hooks here set ``_supports_tf_logs``: Keras then hands them the step's logs as tensors instead of
converting every log to NumPy after every step (a host sync of all metrics, 0.1 ms a step measured on the HCCP
quick model); each converts only what it reads, when it reads it."""

from __future__ import annotations

import csv
import math
import os
import time
from typing import Callable, Dict, List, Optional

import tensorflow as tf
import tf_keras as keras


class NaNGuard(keras.callbacks.Callback):
    """Stops training at the first non-finite loss and remembers where it happened.

    Keras' ``TerminateOnNaN`` stops silently; the driver reads :attr:`event` and raises an error that says where
    the loss broke and what to check.
    """

    def __init__(self):
        super().__init__()
        self._supports_tf_logs = True  # reads one scalar: converts it itself (module docstring)
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


class ExactValidation(keras.callbacks.Callback):
    """Writes exact validation metrics into the epoch logs, before the callbacks after it read them.

    Keras' streaming ``AUC`` counts predictions in 10,000 fixed buckets over [0, 1]; on a validation split whose
    predictions fall in a narrow range (a few buckets), it is far from the exact AUC (0.5 against 0.89 on the
    narrow split of ``tests/tfrec/test_exact_validation.py``). The driver puts this callback before ``ModelCheckpoint``, ``ReduceLROnPlateau``, ``EarlyStopping``,
    TensorBoard and the history, so the best weights, the plateau and the early stop are decided on the numbers
    ``tfrec evaluate`` reports. At each epoch end ``compute(model)`` predicts the validation split and returns
    ``{name: value}`` under the Keras log names without ``val_`` (``auc``, ``weighted_auc``, ``ctr_auc``, ...);
    each is stored as ``val_<name>``, replacing Keras' value.

    Args:
      compute: ``model -> {metric name: value}``.
    """

    def __init__(self, compute: Callable[[keras.Model], Dict[str, float]]):
        super().__init__()
        self.compute = compute
        self.seconds = 0.0

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        start = time.perf_counter()
        for name, value in self.compute(self.model).items():
            logs["val_" + name] = float(value)
        self.seconds += time.perf_counter() - start


class Throughput(keras.callbacks.Callback):
    """Training examples per second: from the start of each epoch to the end of its last training step, so the
    validation and the epoch-end callbacks (exact validation metrics, checkpoints) are not counted.

    Args:
      global_batch_size: examples per step (all replicas).
    """

    def __init__(self, global_batch_size: int):
        super().__init__()
        self._supports_tf_logs = True  # reads no log
        self.global_batch_size = global_batch_size
        self.steps = 0
        self.train_seconds = 0.0
        self.epoch_rates: List[float] = []
        self._epoch_start = 0.0
        self._last_step_end = 0.0
        self._epoch_steps = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = self._last_step_end = time.perf_counter()
        self._epoch_steps = 0

    def on_train_batch_end(self, batch, logs=None):
        self._epoch_steps += 1
        self._last_step_end = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = self._last_step_end - self._epoch_start
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

    The examples/s of a step line count the steps after the epoch's first one over the time since that first step
    ended: the first step of a run includes tracing the train function (seconds to minutes), which would make the
    first line read a few examples/s. A step line comes only once a rate is measurable (a second step is done).

    Args:
      every_seconds: minimum seconds between step lines (0: epoch lines only).
      global_batch_size: examples per step, for the examples/s figure.
      epochs: total epochs, for the ``epoch i/n`` label.
      printer: where lines go.
      unit: what one example is, in the rate's label (``examples``; ``lists`` for list-wise data, whose
        ``global_batch_size`` counts requests).
    """

    def __init__(self, every_seconds: float, global_batch_size: int, epochs: int,
                 printer: Callable[[str], None] = print, unit: str = "examples"):
        super().__init__()
        self._supports_tf_logs = True  # converts the loss only when it prints a line
        self.every_seconds = every_seconds
        self.unit = unit
        self.global_batch_size = global_batch_size
        self.epochs = epochs
        self.printer = printer
        self._epoch = 0
        self._start = 0.0
        self._first_step_end = 0.0
        self._last = 0.0
        self._steps = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._start = self._last = time.perf_counter()
        self._steps = 0

    def on_train_batch_end(self, batch, logs=None):
        self._steps += 1
        now = time.perf_counter()
        if self._steps == 1:
            self._first_step_end = now
            return
        if self.every_seconds and now - self._last >= self.every_seconds:
            self._last = now
            rate = (self._steps - 1) * self.global_batch_size / max(now - self._first_step_end, 1e-9)
            loss = (logs or {}).get("loss", float("nan"))
            self.printer(f"  epoch {self._epoch + 1}/{self.epochs}  step {batch + 1}  loss {float(loss):.5f}  "
                         f"{rate:,.0f} {self.unit}/s")

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        seconds = time.perf_counter() - self._start
        keys = ["loss", "val_loss", "val_auc", "val_weighted_auc", "val_logloss", "val_weighted_logloss"]
        parts = [f"{k} {float(logs[k]):.5f}" for k in keys if k in logs]
        lr = logs.get("lr", logs.get("learning_rate"))
        if lr is not None:
            parts.append(f"lr {float(lr):.2g}")
        self.printer(f"  epoch {epoch + 1}/{self.epochs} done in {seconds:.1f}s: " + ", ".join(parts))


class GradientDiagnostics(keras.callbacks.Callback):
    """Records the per-batch gradient diagnostics of a :class:`tfrec.models.RankingModel` (KDD 2024 Fig. 2, 3, 9).

    ``set_model`` switches the model's diagnostics on (``model.enable_gradient_diagnostics(True)``, which drops a
    train function traced before, so ``fit`` traces one that computes them; see ``tfrec.metrics.gradients`` for
    what is measured) and the end of training switches them off again. Every ``every_n_batches``-th global step
    (optimizer iterations 1, 1 + n, 1 + 2n, ...) it writes:

    * one CSV row: ``epoch`` (0-based, as Keras counts), ``batch`` (0-based within the epoch), ``step`` (the
      global optimizer step after the batch, 1-based; it carries on across a ``BackupAndRestore`` resume), then
      the ``grad_*`` values in the order the model reports them. An existing file is appended to (its header is
      kept), so a resumed run continues the same file.
    * with ``log_dir``: TensorBoard scalars ``gradients/<name>`` at the global step, in ``<log_dir>/gradients``.

    Args:
      csv_path: the CSV file to write.
      log_dir: TensorBoard root directory (None: no TensorBoard output).
      every_n_batches: record one step in this many (>= 1). The diagnostics are computed every step either way.
    """

    def __init__(self, csv_path: str, log_dir: Optional[str] = None, every_n_batches: int = 1):
        super().__init__()
        self._supports_tf_logs = True  # converts the grad_* logs only for the steps it records
        if int(every_n_batches) < 1:
            raise ValueError(f"`every_n_batches` must be >= 1. Received: every_n_batches={every_n_batches}")
        self.csv_path = csv_path
        self.log_dir = log_dir
        self.every_n_batches = int(every_n_batches)
        self.rows_written = 0
        self._epoch = 0
        self._file = None
        self._writer = None
        self._csv = None
        self._columns: Optional[List[str]] = None
        self._summary = None

    def set_model(self, model):
        if not hasattr(model, "enable_gradient_diagnostics"):
            raise TypeError("GradientDiagnostics needs a tfrec RankingModel (with enable_gradient_diagnostics); "
                            f"received {type(model).__name__}")
        super().set_model(model)
        model.enable_gradient_diagnostics(True)
        model.train_function = None  # a train function traced before the switch would not compute them

    def on_train_begin(self, logs=None):
        directory = os.path.dirname(os.path.abspath(self.csv_path))
        os.makedirs(directory, exist_ok=True)
        exists = os.path.exists(self.csv_path) and os.path.getsize(self.csv_path) > 0
        self._columns = None
        if exists:
            with open(self.csv_path, "r", encoding="utf-8", newline="") as f:
                header = next(csv.reader(f), None)
            self._columns = header[3:] if header else None
        self._file = open(self.csv_path, "a", encoding="utf-8", newline="")
        self._csv = csv.writer(self._file)
        self._summary = None
        if self.log_dir:
            self._writer = tf.summary.create_file_writer(os.path.join(self.log_dir, "gradients"))

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        names = [k for k in logs if k.startswith("grad_")]
        if not names:
            raise RuntimeError("the training logs carry no gradient diagnostics (grad_*): the model's train_step "
                               "does not compute them (a custom train_step?)")
        step = int(self.model.optimizer.iterations.numpy())
        if (step - 1) % self.every_n_batches:
            return
        if self._columns is None:
            self._columns = names
            self._csv.writerow(["epoch", "batch", "step", *names])
        values = [float(logs[k]) if k in logs else float("nan") for k in self._columns]
        self._csv.writerow([self._epoch, batch, step, *[repr(v) for v in values]])
        self._file.flush()
        self.rows_written += 1
        if self._writer is not None:
            if self._summary is None:
                self._summary = self._summary_function(self._writer, [f"gradients/{k}" for k in self._columns])
            self._summary(tf.constant(values, tf.float32), tf.constant(step, tf.int64))

    @staticmethod
    def _summary_function(writer, tags: List[str]):
        # One traced call per recorded step writes every scalar: eager tf.summary.scalar calls cost one op
        # dispatch each (about 30 a step on DCN V2), more than the training step of a small model.
        @tf.function(input_signature=[tf.TensorSpec([len(tags)], tf.float32), tf.TensorSpec([], tf.int64)])
        def write(values, step):
            with writer.as_default(step=step):
                for i, tag in enumerate(tags):
                    tf.summary.scalar(tag, values[i])

        return write

    def on_train_end(self, logs=None):
        self._close()
        self.model.enable_gradient_diagnostics(False)

    def _close(self):
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._writer is not None:
            self._writer.flush()
            self._writer.close()
            self._writer = None


class TensorBoard(keras.callbacks.TensorBoard):
    """Keras' ``TensorBoard``, without its per-batch cost when it writes per epoch (``update_freq="epoch"``).

    Keras' ``on_train_batch_end`` calls ``tf.summary.scalar`` for every log after every step, also when it writes
    per epoch; then no summary writer is the default one (Keras pushes none for ``"epoch"``), so each call writes
    nothing, but the eager calls cost 0.8 ms a step (measured on the HCCP quick model, whose step takes 7 ms:
    11 %). Here they are skipped in that case; the graph write at the first step and the profiler trace are
    kept, and with an integer ``update_freq`` everything is Keras'.
    """

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(batch, None if self.update_freq == "epoch" else logs)
