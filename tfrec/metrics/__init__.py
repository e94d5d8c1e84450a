"""Metrics: exact weighted AUC / logloss (NumPy) for evaluation reports, per task for multi-task models."""

from tfrec.metrics.classification import auc, binary_report, logloss
from tfrec.metrics.multitask import multitask_report

__all__ = ["auc", "binary_report", "logloss", "multitask_report"]
