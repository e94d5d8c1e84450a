"""The metrics of the KDD 2024 protocols' tables: where each is in a run's results
(:func:`tfrec.experiments.kdd.runner.run_training`) and which direction is better."""

from __future__ import annotations

from typing import Dict

from tfrec.experiments.core.registry import AUC, LOGLOSS, Metric

#: The metrics of the KDD tables (a run's keys: :mod:`tfrec.experiments.kdd.runner`).
VALID_LOGLOSS = Metric("valid_logloss", "valid BCE", ("valid", "weighted_logloss"), "lower", "drop")
TRAIN_BCE = Metric("train_bce", "train BCE (epoch 1)", ("train_bce", "epoch1"), "lower")
TRAIN_BCE_LAST = Metric("train_bce_last", "train BCE (last epoch)", ("train_bce", "last_epoch"), "lower")
GRAD_NEG = Metric("grad_neg", "neg. logit grad (epoch 1)", ("gradients", "grad_neg_mean_epoch1"), "higher",
                  scientific=True)
AUC_CALIBRATED = Metric("auc_calibrated", "test AUC (isotonic)", ("calibrated", "auc"), "higher", "lift")
LOGLOSS_CALIBRATED = Metric("logloss_calibrated", "test BCE (isotonic)", ("calibrated", "weighted_logloss"), "lower",
                            "drop")
METRICS: Dict[str, Metric] = {m.key: m for m in (AUC, LOGLOSS, VALID_LOGLOSS, TRAIN_BCE, TRAIN_BCE_LAST, GRAD_NEG,
                                                 AUC_CALIBRATED, LOGLOSS_CALIBRATED)}
