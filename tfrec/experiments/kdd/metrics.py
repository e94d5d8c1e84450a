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
# What Findings 1 and 3 read besides the table metrics (tfrec.experiments.kdd.findings): the validation BCE after
# the first epoch (Fig. 1a: Combined-Pair's "decreases more rapidly initially"), the training BCE after the second,
# and Eq. 10's terms: the global batch N, the mean prediction on test negatives and the effective positive rate
# (positives weighted by beta_pos).
VALID_LOGLOSS_EPOCH1 = Metric("valid_logloss_epoch1", "valid BCE (epoch 1)", ("history", "val_weighted_logloss", 0),
                              "lower", "drop")
# Training BCE after epoch 2: every cell trains at least 3 epochs (early stopping's patience is 2), so this compares
# two losses at the same point of training, which the last epoch (a different one per cell) does not.
TRAIN_BCE_EPOCH2 = Metric("train_bce_epoch2", "train BCE (epoch 2)", ("train_bce", "per_epoch", "2"), "lower")
# Combined-Contrastive's auxiliary loss acts on the penultimate representation, not on the logit: the logit's
# gradient (GRAD_NEG) sees only alpha x BCE. The first epoch's mean gradient norm over all trainable variables
# (tfrec.metrics.gradients) is where its extra gradient shows.
GRAD_NORM_GLOBAL = Metric("grad_norm_global", "parameter grad norm (epoch 1)", ("gradients", "grad_norm_global_epoch1"),
                          "higher", scientific=True)
PRED_NEG = Metric("pred_neg", "mean prediction, test negatives", ("test", "mean_prediction_negatives"), "lower")
EFFECTIVE_POSITIVE_RATE = Metric("effective_positive_rate", "effective positive rate (test)",
                                 ("test", "effective_positive_rate"), "higher")
GLOBAL_BATCH = Metric("global_batch", "global batch N", ("train", "global_batch_size"), "higher")
METRICS: Dict[str, Metric] = {m.key: m for m in (AUC, LOGLOSS, VALID_LOGLOSS, TRAIN_BCE, TRAIN_BCE_LAST, GRAD_NEG,
                                                 AUC_CALIBRATED, LOGLOSS_CALIBRATED, VALID_LOGLOSS_EPOCH1,
                                                 TRAIN_BCE_EPOCH2, GRAD_NORM_GLOBAL, PRED_NEG,
                                                 EFFECTIVE_POSITIVE_RATE, GLOBAL_BATCH)}
