"""One training run of an experiment cell: train (``tfrec.train``), evaluate, summarise, write ``run.json``.

A run trains the cell's config, then on the best weights measures, with the cell's ``beta_pos`` weights:

* ``valid`` and ``test``: :func:`tfrec.metrics.binary_report` (``logloss`` unweighted; ``weighted_logloss`` the
  paper's BCE metric ``-sum w [y log p + (1 - y) log(1 - p)] / sum w``), plus the mean prediction over negatives;
* ``calibrated``: isotonic regression (scikit-learn ``IsotonicRegression``, weighted by ``w``, clipped to the
  fitted range) fitted on the validation predictions and applied to the test predictions; AUC and weighted
  logloss of the calibrated test predictions (KDD 2024 Sec. 4.5.2 reports negative sampling after it);
* ``calibration``: the bias per pCTR bucket of equal positive weight on test (Fig. 8,
  :func:`tfrec.metrics.calibration.calibration_by_bucket`), not post-processed;
* ``train_bce``: the training BCE of Eq. 15 (``sum w BCE / N``, the mean over N of the training batches, with
  dropout on, as the paper's training curves show it; a combined loss optimises more than this term), per
  epoch and per logged interval (``train_bce.csv``), from the model's own training-metric accumulators;
* ``landscape.csv`` in the run directory: the BCE around the trained head (Fig. 1b,
  :mod:`tfrec.experiments.kdd.landscape`);
* ``gradients``: from ``gradient_diagnostics.csv`` (``tfrec.metrics.gradients``), the first epoch's mean over
  batches of ``grad_neg_mean`` (the mean ``|dL/dz|`` over the batch's negatives: Fig. 2, Table 2's "gradient
  norm"), of the per-batch 90th percentile, and of ``grad_pos_mean``.
"""

from __future__ import annotations

import csv
import math
import os
import time
from typing import Callable, Dict, List, Optional

import numpy as np
import tf_keras as keras

from tfrec.config import RunConfig
from tfrec.experiments.core.cell import train_summary

TRAIN_BCE_CSV = "train_bce.csv"


class TrainBCE(keras.callbacks.Callback):
    """Records the training BCE of Eq. 15 (``sum w BCE / N``) of a :class:`tfrec.models.RankingModel`.

    The model's training metrics accumulate, per epoch, ``sum w BCE`` (``weighted_logloss.total``) and ``N``
    (``logloss.count``); every ``every_n_batches`` batches the callback reads them and writes the value of the
    interval since its last row, and the epoch's last (partial) interval when validation starts (Keras resets
    the metrics for validation after ``on_test_begin``, before ``on_epoch_end``) or, without validation, at the
    epoch's end. The accumulators are read only when a row is written (a read of the replica-summed variables
    costs more than a small model's training step). Under a distribution strategy they are summed over replicas.

    Args:
      csv_path: CSV with ``epoch, batch, step, examples, train_bce`` (appended to on a resume).
      every_n_batches: one row per this many batches.
    """

    def __init__(self, csv_path: str, every_n_batches: int = 1):
        super().__init__()
        self._supports_tf_logs = True  # reads no log (the metric variables, when it writes a row)
        self.csv_path = csv_path
        self.every_n_batches = max(1, int(every_n_batches))
        self._epoch = 0
        self._batch = 0
        self._mark = (0.0, 0.0)
        self._flushed = False
        self._file = None

    def on_train_begin(self, logs=None):
        exists = os.path.exists(self.csv_path) and os.path.getsize(self.csv_path) > 0
        self._file = open(self.csv_path, "a", encoding="utf-8", newline="")
        self._csv = csv.writer(self._file)
        if not exists:
            self._csv.writerow(["epoch", "batch", "step", "examples", "train_bce"])

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._mark = (0.0, 0.0)
        self._flushed = False

    def _read(self):
        total = float(self.model.weighted_logloss_metric.total.numpy())
        count = float(self.model.logloss_metric.count.numpy())
        return total, count

    def on_train_batch_end(self, batch, logs=None):
        self._batch = batch
        if (batch + 1) % self.every_n_batches == 0:
            self._write()

    def _write(self):
        current = self._read()
        d_total, d_count = current[0] - self._mark[0], current[1] - self._mark[1]
        if d_count > 0:
            step = int(self.model.optimizer.iterations.numpy())
            self._csv.writerow([self._epoch, self._batch, step, int(d_count), repr(d_total / d_count)])
            self._file.flush()
        self._mark = current

    def on_test_begin(self, logs=None):
        # The epoch's last interval: validation follows the last training batch, and its metrics are reset
        # only after this hook.
        if not self._flushed:
            self._write()
        self._flushed = True

    def on_epoch_end(self, epoch, logs=None):
        if not self._flushed:  # fit without validation: the training metrics are still the epoch's
            self._write()
        self._flushed = True

    def on_train_end(self, logs=None):
        if self._file is not None:
            self._file.close()
            self._file = None


def read_csv(path: str) -> List[Dict[str, float]]:
    """Rows of a numeric CSV (``train_bce.csv``, ``gradient_diagnostics.csv``) as dicts of floats."""
    if not os.path.exists(path):
        return []
    with open(path, "r", encoding="utf-8", newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _mean(values) -> Optional[float]:
    values = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(values)) if values else None


def gradient_summary(rows: List[Dict[str, float]]) -> Dict[str, Optional[float]]:
    """First-epoch means over batches of the negative / positive logit-gradient diagnostics."""
    first = [r for r in rows if r.get("epoch") == 0]
    out = {}
    for key in ("grad_neg_mean", "grad_neg_p90", "grad_pos_mean", "grad_norm_global"):
        out[f"{key}_epoch1"] = _mean(r.get(key) for r in first)
    out["batches_epoch1"] = len(first)
    return out


def curve_summary(rows: List[Dict[str, float]]) -> Dict[str, Optional[float]]:
    """Per-epoch means (weighted by examples) of the ``train_bce.csv`` intervals."""
    by_epoch: Dict[int, List[float]] = {}
    for r in rows:
        by_epoch.setdefault(int(r["epoch"]), []).append((r["examples"], r["train_bce"]))
    return {str(e + 1): float(sum(n * v for n, v in pairs) / sum(n for n, _ in pairs))
            for e, pairs in sorted(by_epoch.items())}


def _evaluate(model, cfg: RunConfig, buckets: int) -> Dict[str, object]:
    from sklearn.isotonic import IsotonicRegression

    import tensorflow as tf

    from tfrec import data as data_lib
    from tfrec.families import get
    from tfrec.metrics import binary_report
    from tfrec.metrics.calibration import calibration_by_bucket

    # One function traced once for both splits (``tfrec.evaluate.predict_split`` traces per call).
    predict = tf.function(lambda features: model(features, training=False)["probability"],
                          input_signature=[model.input_signature()], autograph=False)
    schema = data_lib.load_schema(cfg.data.dir)
    out: Dict[str, object] = {}
    preds = {}
    for split in ("valid", "test"):
        ds = data_lib.make_dataset(data_lib.split_files(cfg.data.dir, split), schema,
                                   get("pointwise").resolve(cfg).data.eval_batch_size,
                                   training=False, cycle_length=1, beta_pos=cfg.data.beta_pos)
        parts = [(predict(f).numpy(), y.numpy(), w.numpy()) for f, y, w in ds]
        p, y, w = (np.concatenate([part[i] for part in parts]) for i in range(3))
        preds[split] = (p, y, w)
        report = binary_report(y, p, w)
        neg = y == 0
        report["mean_prediction_negatives"] = float(p[neg].mean()) if neg.any() else None
        out[split] = report
    (pv, yv, wv), (pt, yt, wt) = preds["valid"], preds["test"]
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(pv, yv, sample_weight=wv)
    calibrated = binary_report(yt, iso.predict(pt), wt)
    out["calibrated"] = {k: calibrated[k] for k in ("auc", "weighted_auc", "logloss", "weighted_logloss",
                                                     "mean_prediction")}
    out["calibration"] = calibration_by_bucket(yt, pt, wt, num_buckets=buckets) if (yt > 0).any() else []
    return out


def run_training(cfg: RunConfig, run_dir: str, printer: Callable[[str], None] = print,
                 buckets: int = 45, bce_every_n_batches: int = 10) -> Dict[str, object]:
    """Trains and evaluates ``cfg`` in ``run_dir`` (the model directory) and returns the run's results: the cell of
    the KDD protocols, run through :func:`tfrec.experiments.core.cell.run_cell` (which adds ``wall_seconds`` and
    frees the Keras session).

    Resumes a killed run from its backup (same ``run_dir``).
    """
    from tfrec.experiments.kdd.landscape import write_landscape
    from tfrec.families.registry import get as family

    cfg.train.model_dir = run_dir
    cfg.train.gradient_diagnostics = True
    start = time.perf_counter()
    bce = TrainBCE(os.path.join(run_dir, TRAIN_BCE_CSV), bce_every_n_batches)
    result = family("pointwise").train(cfg, printer=printer, extra_callbacks=[bce])
    train_seconds = time.perf_counter() - start
    evaluation = _evaluate(result.model, cfg, buckets)
    write_landscape(result.model, cfg, run_dir)  # Fig. 1b's grid, on the best weights
    curve = read_csv(os.path.join(run_dir, TRAIN_BCE_CSV))
    epochs = curve_summary(curve)
    return {
        "train": train_summary(result.summary),
        "history": result.history,
        "train_bce": {"per_epoch": epochs, "epoch1": epochs.get("1"),
                      "last_epoch": epochs[max(epochs, key=int)] if epochs else None},
        "gradients": gradient_summary(read_csv(os.path.join(run_dir, "gradient_diagnostics.csv"))),
        **evaluation,
        "train_seconds": train_seconds,
    }
