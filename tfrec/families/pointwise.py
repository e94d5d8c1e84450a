"""The ``pointwise`` family: point-wise CTR (one ``tf.Example`` per row, one click label), DCN V2.

Data: Criteo Kaggle / criteo_x1 logs (or :mod:`tfrec.simulation.criteo`) through :mod:`pipelines.criteo`
(``tfrec prepare``, section ``prepare``); model: :class:`tfrec.models.DCNv2` with a registered loss
(``loss.name``); report: :func:`tfrec.metrics.binary_report` (AUC and logloss, unweighted and weighted).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Tuple

from tfrec.families.registry import register
from tfrec.families.rows import RowFamily, rows_of

#: The exact validation metrics of a point-wise model (``val_<name>`` in the training logs).
VALIDATION_METRICS = ("auc", "weighted_auc", "logloss", "weighted_logloss")


class PointwiseFamily(RowFamily):
    """Point-wise CTR (module docstring)."""

    name = "pointwise"
    title = "point-wise CTR dataset (one click label)"
    models = ("dcn_v2",)
    default_model = "dcn_v2"
    labels = ("label",)
    task_labels = {"ctr": "label"}
    formats = ("auto", "kaggle", "x1")

    def keras_loss(self, cfg):
        from tfrec import losses

        return losses.get(cfg.model.loss.name, **cfg.model.loss.params)

    def schema_class(self):
        from tfrec.features import PointwiseSchema

        return PointwiseSchema

    def prediction_outputs(self, model) -> Tuple[str, ...]:
        return ("probability",)

    def report(self, y, p, w) -> Dict[str, Any]:
        from tfrec.metrics import binary_report

        return binary_report(y, p, w)

    def validation_metrics(self, model, y, p, w) -> Dict[str, float]:
        import numpy as np

        if not np.isfinite(p).all():
            return {k: float("nan") for k in VALIDATION_METRICS}
        r = self.report(y, p, w)
        return {k: r[k] for k in VALIDATION_METRICS}

    def report_rows(self, report: Mapping[str, Any]) -> List[Tuple[str, Any]]:
        return rows_of(report, ("auc", "logloss", "weighted_auc", "weighted_logloss", "rows", "positive_rate",
                                "effective_positive_rate"))

    def export_tasks(self, model) -> List[Tuple[str, str, str]]:
        return [("ctr", "probability", "logit")]

    def _pipeline(self) -> Callable[..., Dict[str, Any]]:
        from pipelines.criteo import run

        return run

    def summary_rates(self):
        return (("positive rate (train)", "positive_rate"), ("effective positive rate (train)",
                                                              "effective_positive_rate"))

    def simulate(self, cfg, output: str) -> Dict[str, Any]:
        import dataclasses

        from tfrec.simulation import simulate

        result = simulate(dataclasses.replace(cfg.simulation, kind="criteo", output=output))
        return {"positive_rate": result.positive_rate, "truth_auc": result.truth_auc,
                "truth_path": result.truth_path}


POINTWISE = register(PointwiseFamily())
