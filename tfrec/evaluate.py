"""Evaluation of a trained model on a split: the prediction of every example of a split (:class:`SplitPredictor`,
:func:`predict_split`), the exact validation metrics of training, the report file, and the entries that evaluate
with the dataset's family (:func:`evaluate`, :func:`train_and_evaluate`): exact AUC and logloss, unweighted and
weighted by ``weight``; for a multi-task model, per task in each task's space (``tfrec.metrics.multitask``)."""

from __future__ import annotations

import json
import os
from typing import Callable, Dict, Optional

import numpy as np
import tensorflow as tf

from tfrec import data as data_lib
from tfrec.config import RunConfig


class SplitPredictor:
    """Predicts every example of one split, with one prediction function traced once per model.

    Built once and called every epoch by the training driver's exact validation metrics
    (:func:`exact_validation_metrics`), so the validation split's predictions cost one forward pass and no new
    trace per epoch. The function is traced for the dataset's feature spec (batch dimension unknown), without
    AutoGraph (the models' inference pass has no tensor-dependent Python control flow).

    Args:
      data_dir: the prepared dataset.
      split: ``train``, ``valid`` or ``test``.
      batch_size: examples per prediction batch.
      outputs: model output names to keep (``("probability",)``: one ``[n]`` array).
      beta_pos: overrides the weights as ``data.beta_pos`` does.
      max_batches: read at most this many batches (0: the whole split).
    """

    def __init__(self, data_dir: str, split: str, batch_size: int, outputs=("probability",), beta_pos=None,
                 max_batches: int = 0):
        self.data_dir, self.split, self.names = data_dir, split, tuple(outputs)
        schema = data_lib.load_schema(data_dir)
        ds = data_lib.make_dataset(data_lib.split_files(data_dir, split), schema, batch_size, training=False,
                                   cycle_length=1, beta_pos=beta_pos)
        self.dataset = ds.take(max_batches) if max_batches else ds
        self._model, self._predict = None, None

    def _function(self, model):
        if model is not self._model:
            names = self.names
            self._model = model
            self._predict = tf.function(lambda features: {n: model(features, training=False)[n] for n in names},
                                        input_signature=[self.dataset.element_spec[0]], autograph=False)
        return self._predict

    def __call__(self, model):
        """``(probabilities, labels, weights)`` in file order; see :func:`predict_split`."""
        predict = self._function(model)
        probs, labels, weights = {name: [] for name in self.names}, [], []
        for features, label, weight in self.dataset:
            for name, p in predict(features).items():
                probs[name].append(p.numpy())
            labels.append(label.numpy())
            weights.append(weight.numpy())
        if not labels:
            raise data_lib.DatasetError(f"the {self.split} split of {self.data_dir} is empty")
        p = {name: np.concatenate(v) for name, v in probs.items()}
        return (p["probability"] if self.names == ("probability",) else p), np.concatenate(labels), \
            np.concatenate(weights)


def predict_split(model, data_dir: str, split: str, batch_size: int, outputs=("probability",), beta_pos=None):
    """Probabilities, labels and weights of every example of ``split`` (in file order); ``beta_pos`` overrides
    the weights as ``data.beta_pos`` does.

    With the default ``outputs`` the probabilities are one ``[n]`` array; otherwise a dict output name ->
    ``[n]`` of the named model outputs (e.g. ``("ctr", "cvr")``). Labels are ``[n]``, or ``[n, 2]`` for a
    multi-task dataset.
    """
    return SplitPredictor(data_dir, split, batch_size, outputs, beta_pos)(model)


def exact_validation_metrics(cfg: RunConfig, family, max_batches: int = 0) -> Callable[[object], Dict[str, float]]:
    """``model -> metrics``: the exact metrics of the valid split under the names of the training logs (without
    ``val_``), for :class:`tfrec.callbacks.ExactValidation`.

    The values are those :func:`evaluate` reports for ``split="valid"`` (the same predictions, the same NumPy
    metrics), as the family names them (:meth:`tfrec.families.rows.RowFamily.validation_metrics`): a point-wise
    model's ``auc``, ``weighted_auc``, ``logloss``, ``weighted_logloss``; a multi-task model's ``<task>_auc`` per
    output task, and ``auc`` / ``logloss`` of its first task in that task's space (as its Keras metrics name
    them). Predictions that are not all finite give NaN for every metric.

    Args:
      cfg: the run config (``data.dir``, ``data.eval_batch_size``, ``data.beta_pos``).
      family: the dataset's row family.
      max_batches: validation batches to read (0: the whole split; ``train.validation_steps``).
    """
    predictors: Dict[tuple, SplitPredictor] = {}

    def compute(model) -> Dict[str, float]:
        outputs = family.prediction_outputs(model)
        if outputs not in predictors:
            predictors[outputs] = SplitPredictor(cfg.data.dir, "valid", cfg.data.eval_batch_size, outputs,
                                                 cfg.data.beta_pos, max_batches)
        p, y, w = predictors[outputs](model)
        return family.validation_metrics(model, y, p, w)

    return compute


def evaluate(cfg: RunConfig, split: str = "test", model=None, output: Optional[str] = None) -> Dict[str, float]:
    """Evaluates the best weights of ``cfg.train.model_dir`` (or ``model``) on ``split`` with the report of the
    dataset's family (:meth:`tfrec.families.Family.evaluate`).

    A point-wise model's report has auc, logloss, weighted_auc, weighted_logloss, rows, positive_rate,
    effective_positive_rate, mean_prediction, split; a multi-task model's is :func:`tfrec.metrics.multitask_report`
    (recorded in ``metrics.json``: ``output``, default ``<model_dir>/metrics.json``; the other splits' entries are
    kept); a pre-ranking model's is :func:`tfrec.evaluate_preranking.preranking_report` (in
    ``preranking_metrics.json``).
    """
    from tfrec.families import family_of

    return family_of(cfg.data.dir).evaluate(cfg, split, model=model, output=output)


def record_report(path: str, split: str, report: Dict[str, object]) -> None:
    """Sets ``report["split"]`` and stores it under ``split`` in the JSON file ``path`` (the other splits' reports
    kept), written atomically (temp file + rename) as strict JSON: an undefined metric (NaN) is ``null``."""
    from tfrec.jsonio import write_json

    report["split"] = split
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    recorded = {}
    if os.path.exists(path):
        with open(path, "r", encoding="utf-8") as f:
            recorded = json.load(f)
    recorded[split] = report
    write_json(path, recorded)


def train_and_evaluate(cfg: RunConfig, splits=("valid", "test"), printer=print) -> Dict[str, object]:
    """Trains ``cfg`` and evaluates its best weights on ``splits`` with the dataset's family
    (:meth:`tfrec.families.Family.train_and_evaluate`), for every family alike.

    Returns:
      ``{"summary": the training summary, "metrics": {split: the report of :func:`evaluate`}}``; the metrics are
      also recorded in the run's metrics file. On a CPU host with ``train.replicas > 1`` the caller must first
      split the CPU (``tfrec.devices.configure_cpu_replicas``).
    """
    from tfrec.families import family_of

    return family_of(cfg.data.dir).train_and_evaluate(cfg, splits, printer=printer)
