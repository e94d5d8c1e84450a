"""Evaluation of a trained model on a split: exact AUC and logloss, unweighted and weighted by ``weight``; for a
multi-task model, per task in each task's space (``tfrec.metrics.multitask``)."""

from __future__ import annotations

import json
import os
from typing import Dict, Optional

import numpy as np
import tensorflow as tf

from tfrec import data as data_lib
from tfrec.config import RunConfig
from tfrec.features import MultiTaskSchema
from tfrec.metrics import binary_report, multitask_report
from tfrec.metrics.multitask import TASKS


def predict_split(model, data_dir: str, split: str, batch_size: int, outputs=("probability",), beta_pos=None):
    """Probabilities, labels and weights of every example of ``split`` (in file order); ``beta_pos`` overrides
    the weights as ``data.beta_pos`` does.

    With the default ``outputs`` the probabilities are one ``[n]`` array; otherwise a dict output name ->
    ``[n]`` of the named model outputs (e.g. ``("ctr", "cvr")``). Labels are ``[n]``, or ``[n, 2]`` for a
    multi-task dataset.
    """
    schema = data_lib.load_schema(data_dir)
    ds = data_lib.make_dataset(data_lib.split_files(data_dir, split), schema, batch_size, training=False,
                               cycle_length=1, beta_pos=beta_pos)
    names = tuple(outputs)

    @tf.function(reduce_retracing=True)
    def predict(features):
        out = model(features, training=False)
        return {name: out[name] for name in names}

    probs, labels, weights = {name: [] for name in names}, [], []
    for features, label, weight in ds:
        for name, p in predict(features).items():
            probs[name].append(p.numpy())
        labels.append(label.numpy())
        weights.append(weight.numpy())
    if not labels:
        raise data_lib.DatasetError(f"the {split} split of {data_dir} is empty")
    p = {name: np.concatenate(v) for name, v in probs.items()}
    return (p["probability"] if names == ("probability",) else p), np.concatenate(labels), np.concatenate(weights)


def evaluate_multitask(model, data_dir: str, split: str, batch_size: int, beta_pos=None) -> Dict[str, object]:
    """:func:`tfrec.metrics.multitask_report` of ``model``'s task outputs on ``split`` of a multi-task dataset."""
    tasks = model.output_tasks() if hasattr(model, "output_tasks") else [t for t in TASKS if t in model.tasks]
    p, y, w = predict_split(model, data_dir, split, batch_size, outputs=tuple(tasks), beta_pos=beta_pos)
    return multitask_report(y, p, w)


def evaluate(cfg: RunConfig, split: str = "test", model=None, output: Optional[str] = None) -> Dict[str, float]:
    """Evaluates the best weights of ``cfg.train.model_dir`` (or ``model``) on ``split``.

    Returns the metrics (auc, logloss, weighted_auc, weighted_logloss, rows, positive_rate,
    effective_positive_rate, mean_prediction, split; for a multi-task dataset those of
    :func:`tfrec.metrics.multitask_report`) and records them under the split's name in ``metrics.json``
    (``output``, default ``<model_dir>/metrics.json``; the other splits' entries are kept).
    """
    if split not in data_lib.SPLITS:
        raise ValueError(f"`split` must be one of {data_lib.SPLITS}. Received: split={split!r}")
    cfg = cfg.for_family(listwise=False)
    if model is None:
        from tfrec.train import load_trained_model

        model = load_trained_model(cfg)
    if isinstance(data_lib.load_schema(cfg.data.dir), MultiTaskSchema):
        report = evaluate_multitask(model, cfg.data.dir, split, cfg.data.eval_batch_size, cfg.data.beta_pos)
    else:
        p, y, w = predict_split(model, cfg.data.dir, split, cfg.data.eval_batch_size, beta_pos=cfg.data.beta_pos)
        report = binary_report(y, p, w)
    record_report(output or os.path.join(cfg.train.model_dir, "metrics.json"), split, report)
    return report


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
    """Trains ``cfg`` (:func:`tfrec.train.train`) and evaluates its best weights on ``splits``: the unit an
    experiment protocol calls once per (config, seed), for single-task and multi-task models alike.

    Returns:
      ``{"summary": the training summary, "metrics": {split: the report of :func:`evaluate`}}``; the metrics are
      also recorded in ``<model_dir>/metrics.json``. On a CPU host with ``train.replicas > 1`` the caller must
      first split the CPU (``tfrec.devices.configure_cpu_replicas``).
    """
    from tfrec.train import train

    result = train(cfg, printer=printer)
    metrics = {split: evaluate(cfg, split, model=result.model) for split in splits}
    return {"summary": result.summary, "metrics": metrics}
