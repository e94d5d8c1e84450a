"""Metrics: exact weighted AUC / logloss (NumPy) for evaluation reports."""

from tfrec.metrics.classification import auc, binary_report, logloss

__all__ = ["auc", "binary_report", "logloss"]
