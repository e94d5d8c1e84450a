"""Evaluation of a trained model on a split: exact AUC and logloss, unweighted and weighted by ``weight``."""

from __future__ import annotations

import json
import os
from typing import Dict, Optional

import numpy as np
import tensorflow as tf

from tfrec import data as data_lib
from tfrec.config import RunConfig
from tfrec.metrics import binary_report


def predict_split(model, data_dir: str, split: str, batch_size: int, beta_pos=None):
    """Probabilities, labels and weights of every example of ``split`` (in file order); ``beta_pos`` overrides
    the weights as ``data.beta_pos`` does."""
    schema = data_lib.load_schema(data_dir)
    ds = data_lib.make_dataset(data_lib.split_files(data_dir, split), schema, batch_size, training=False,
                               cycle_length=1, beta_pos=beta_pos)

    @tf.function(reduce_retracing=True)
    def predict(features):
        return model(features, training=False)["probability"]

    probs, labels, weights = [], [], []
    for features, label, weight in ds:
        probs.append(predict(features).numpy())
        labels.append(label.numpy())
        weights.append(weight.numpy())
    if not probs:
        raise data_lib.DatasetError(f"the {split} split of {data_dir} is empty")
    return np.concatenate(probs), np.concatenate(labels), np.concatenate(weights)


def evaluate(cfg: RunConfig, split: str = "test", model=None, output: Optional[str] = None) -> Dict[str, float]:
    """Evaluates the best weights of ``cfg.train.model_dir`` (or ``model``) on ``split``.

    Returns the metrics (auc, logloss, weighted_auc, weighted_logloss, rows, positive_rate,
    effective_positive_rate, mean_prediction, split) and records them under the split's name in ``metrics.json``
    (``output``, default ``<model_dir>/metrics.json``; the other splits' entries are kept).
    """
    if split not in data_lib.SPLITS:
        raise ValueError(f"`split` must be one of {data_lib.SPLITS}. Received: split={split!r}")
    if model is None:
        from tfrec.train import load_trained_model

        model = load_trained_model(cfg)
    p, y, w = predict_split(model, cfg.data.dir, split, cfg.data.eval_batch_size, cfg.data.beta_pos)
    report = binary_report(y, p, w)
    report["split"] = split
    path = output or os.path.join(cfg.train.model_dir, "metrics.json")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    recorded = {}
    if os.path.exists(path):
        with open(path, "r", encoding="utf-8") as f:
            recorded = json.load(f)
    recorded[split] = report
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(recorded, f, indent=2)
    os.replace(tmp, path)
    return report
