"""Exact per-task metrics of a multi-task (click, conversion) model, in NumPy.

Each task is scored in its own sample space, as in the ESMM and PWiseR evaluations:

* ``ctr``: AUC and logloss of ``pCTR`` against the click over all exposures (also weighted by ``weight``,
  ``beta_pos`` on click positives);
* ``cvr``: AUC and logloss of ``pCVR`` against the conversion over the clicked samples only;
* ``ctcvr``: AUC and logloss of ``pCTCVR`` against ``click * conversion`` over all exposures. A model without a
  ``ctcvr`` output but with ``ctr`` and ``cvr`` gets ``pCTCVR = pCTR * pCVR`` (ESMM's identity).

The AUC and logloss are :func:`tfrec.metrics.classification.auc` / ``logloss`` (exact, ties count 1/2); a task
whose space has no positive or no negative gets NaN for its AUC.
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional

import numpy as np

from tfrec.metrics.classification import auc, logloss

TASKS = ("ctr", "cvr", "ctcvr")


def task_space(task: str, labels: np.ndarray):
    """``(mask, labels)`` of ``task``'s evaluation space for ``labels`` ``[n, 2]`` = (click, conversion)."""
    y = np.asarray(labels, dtype=np.float64).reshape(-1, 2)
    click, conv = y[:, 0], y[:, 1]
    if task == "ctr":
        return np.ones(len(y), dtype=bool), click
    if task == "cvr":
        mask = click == 1
        return mask, conv[mask]
    if task == "ctcvr":
        return np.ones(len(y), dtype=bool), click * conv
    raise ValueError(f"`task` must be one of {TASKS}. Received: task={task!r}")


def multitask_report(labels, predictions: Mapping[str, np.ndarray],
                     weights: Optional[np.ndarray] = None) -> Dict[str, object]:
    """Per-task AUC and logloss in each task's space (see the module docstring), with counts.

    Args:
      labels: ``[n, 2]`` (click, conversion) in {0, 1}.
      predictions: task -> ``[n]`` probabilities, for the tasks the model outputs (of ``ctr``, ``cvr``,
        ``ctcvr``).
      weights: ``[n]`` sample weights (the ``weight`` feature); used for ``ctr_weighted_auc`` and
        ``ctr_weighted_logloss`` only.

    Returns:
      ``tasks`` (the tasks scored), ``<task>_auc``, ``<task>_logloss``, ``<task>_rows`` (the size of its space),
      ``ctr_weighted_auc`` / ``ctr_weighted_logloss`` when ``ctr`` is scored, ``rows``, ``clicks``,
      ``conversions``, ``click_rate``, ``conversion_rate`` (conversions per click).

    Raises:
      ValueError: labels not ``[n, 2]`` in {0, 1}, a conversion without a click, or a prediction of another
        length.
    """
    y = np.asarray(labels, dtype=np.float64)
    if y.ndim != 2 or y.shape[1] != 2:
        raise ValueError(f"labels must be [n, 2] (click, conversion). Received shape {y.shape}")
    if np.any((y != 0) & (y != 1)):
        raise ValueError("labels must be 0 or 1")
    if np.any((y[:, 1] == 1) & (y[:, 0] == 0)):
        raise ValueError("a conversion without a click: labels must satisfy conversion <= click")
    preds = {t: np.asarray(p, dtype=np.float64).reshape(-1) for t, p in predictions.items()}
    if "ctcvr" not in preds and "ctr" in preds and "cvr" in preds:
        preds["ctcvr"] = preds["ctr"] * preds["cvr"]
    n = len(y)
    clicks, conversions = int(y[:, 0].sum()), int(y[:, 1].sum())
    report: Dict[str, object] = {"tasks": [t for t in TASKS if t in preds], "rows": n, "clicks": clicks,
                                 "conversions": conversions, "click_rate": clicks / n if n else float("nan"),
                                 "conversion_rate": conversions / clicks if clicks else float("nan")}
    for task in report["tasks"]:  # type: ignore[union-attr]
        p = preds[task]
        if p.shape != (n,):
            raise ValueError(f"predictions[{task!r}] has {p.shape[0]} values for {n} rows")
        mask, t = task_space(task, y)
        report[f"{task}_rows"] = int(mask.sum())
        report[f"{task}_auc"] = auc(t, p[mask]) if mask.any() else float("nan")
        report[f"{task}_logloss"] = logloss(t, p[mask]) if mask.any() else float("nan")
        if task == "ctr":
            report["ctr_weighted_auc"] = auc(t, p, weights)
            report["ctr_weighted_logloss"] = logloss(t, p, weights)
    return report
