"""The ``multitask`` family: click and conversion (one ``tf.Example`` per row, labels ``click`` and ``conversion``).

Data: AliExpress / Ali-CCP CSV (or the funnel simulator, :mod:`tfrec.simulation.funnel`) through
:mod:`pipelines.multitask` (``tfrec prepare --format aliexpress`` / ``aliccp``, section ``prepare``); models:
SharedBottom, MMoE, PLE, ESMM, single-task (:mod:`tfrec.models.multitask`), each computing its own loss (per-task
BCE + PWiseR); report: :func:`tfrec.metrics.multitask_report` (each task in its own space).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Tuple

from tfrec.families.registry import register
from tfrec.families.rows import RowFamily, rows_of


class MultiTaskFamily(RowFamily):
    """Click and conversion (module docstring)."""

    name = "multitask"
    title = "multi-task dataset (labels click, conversion)"
    models = ("shared_bottom", "mmoe", "ple", "esmm", "single_task")
    labels = ("click", "conversion")
    task_labels = {"ctr": "click", "ctcvr": "conversion"}
    formats = ("aliexpress", "aliccp")

    def monitor(self, cfg) -> str:
        # Multi-task models report no weighted AUC: val_weighted_auc reads as val_auc (the first task's AUC).
        return "val_auc" if cfg.train.monitor == "val_weighted_auc" else cfg.train.monitor

    def schema_class(self):
        from tfrec.features import MultiTaskSchema

        return MultiTaskSchema

    def prediction_outputs(self, model) -> Tuple[str, ...]:
        return tuple(model.output_tasks())

    def report(self, y, p, w) -> Dict[str, Any]:
        from tfrec.metrics import multitask_report

        return multitask_report(y, p, w)

    def validation_metrics(self, model, y, p, w) -> Dict[str, float]:
        import numpy as np

        tasks = self.prediction_outputs(model)
        names = [f"{t}_auc" for t in tasks] + ["auc", "logloss"]
        if not all(np.isfinite(v).all() for v in p.values()):
            return {k: float("nan") for k in names}
        r = self.report(y, p, w)
        first = model.tasks[0]
        return {**{f"{t}_auc": r[f"{t}_auc"] for t in tasks}, "auc": r[f"{first}_auc"],
                "logloss": r[f"{first}_logloss"]}

    def report_rows(self, report: Mapping[str, Any]) -> List[Tuple[str, Any]]:
        keys = [f"{t}_{m}" for t in report["tasks"] for m in ("auc", "logloss", "rows")]
        return rows_of(report, keys + ["rows", "click_rate", "conversion_rate"])

    def export_tasks(self, model) -> List[Tuple[str, str, str]]:
        return [(t, t, f"{t}_logit") for t in model.output_tasks()]

    def _pipeline(self) -> Callable[..., Dict[str, Any]]:
        from pipelines.multitask import run

        return run

    def pipeline_stats(self, stats: Mapping[str, Any]) -> Dict[str, Any]:
        # The Examples artifact's positive rate is the main (click) label's, as for the single-label families.
        out = dict(stats)
        out.setdefault("positive_rate", out.get("click_rate"))
        return out

    def summary_rates(self):
        return (("click rate (train)", "click_rate"), ("conversions per click (train)", "conversion_rate"),
                ("effective click rate (train)", "effective_click_rate"))

    def simulate(self, cfg, output: str) -> Dict[str, Any]:
        import dataclasses

        from tfrec.simulation import simulate_funnel

        return dataclasses.asdict(simulate_funnel(dataclasses.replace(cfg.simulation, kind="funnel", output=output)))


MULTITASK = register(MultiTaskFamily())
