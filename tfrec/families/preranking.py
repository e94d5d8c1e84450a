"""The ``preranking`` family: list-wise pre-ranking (one ``ExampleListWithContext`` per request), HCCP.

Data: recommendation-cascade logs (:mod:`tfrec.simulation.cascade`, or real logs in that shape) through
HCCP's hybrid-sample Beam pipeline :mod:`pipelines.hybrid_samples` (``tfrec prepare-hybrid``, section ``hybrid``);
reader: :mod:`tfrec.listwise_data`; model: HCCP's :class:`tfrec.models.preranking.ThreeTower` (section
``preranking``); training and report: :mod:`tfrec.train_preranking` (hit rates, MAP / NDCG against the ranking
stage, AUC on impressions); export: :mod:`export.preranking` (``user_embedding``, ``item_embedding``,
``score_candidates`` and the precomputed item embeddings of an item table).
"""

from __future__ import annotations

import math
import os
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from tfrec.families.base import EXAMPLE_LIST, Family
from tfrec.families.registry import register

#: The run's metrics file of a pre-ranking model (one entry per split).
METRICS_FILE = "preranking_metrics.json"


class PrerankingFamily(Family):
    """List-wise pre-ranking (module docstring)."""

    name = "preranking"
    title = "pre-ranking dataset (one ExampleListWithContext per request)"
    unit = "requests"
    batch_defaults = (64, 64)
    throughput_unit = "lists"
    models = ("three_tower",)
    default_model = "three_tower"
    labels = ("click", "purchase")
    task_labels = {"click": "click", "purchase": "purchase"}
    records = EXAMPLE_LIST
    pipeline_section = "hybrid"
    pipeline_inputs = ("inputs", "items")
    trainer_sections = ("data", "model", "train", "preranking")
    item_embeddings = True

    def load_schema(self, data_dir: str):
        from tfrec.families.registry import read_schema_json
        from tfrec.features import ListwiseSchema

        self.check_dataset(data_dir)
        return ListwiseSchema.from_json(read_schema_json(data_dir))

    def train(self, cfg, printer: Callable[[str], None] = print, extra_callbacks: Optional[list] = None):
        from tfrec.train_preranking import train_preranking

        return train_preranking(self.resolve(cfg), printer=printer, extra_callbacks=extra_callbacks)

    def load_trained(self, cfg):
        from tfrec.train_preranking import load_trained_preranking

        return load_trained_preranking(self.resolve(cfg))

    def evaluate(self, cfg, split: str = "test", model=None, output: Optional[str] = None,
                 arrays: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """As :meth:`Family.evaluate`; ``arrays``, when given, receives the per-request arrays the report was
        computed from (:func:`tfrec.train_preranking.evaluate_preranking`; HCCP's Fig. 4 uses them)."""
        from tfrec.train_preranking import evaluate_preranking

        return evaluate_preranking(self.resolve(cfg), split, model=model,
                                   output=output or os.path.join(cfg.train.model_dir, METRICS_FILE), arrays=arrays)

    def report_rows(self, report: Mapping[str, Any]) -> List[Tuple[str, Any]]:
        rows = [(k, v) for k, v in report.items() if not isinstance(v, list)]
        # The per-popularity-octile hit rates (Fig. 7), octile 1 = the most popular items; n/a: an octile with no
        # positive (written as null in preranking_metrics.json).
        rows += [(f"{k} by octile 1-8", " ".join("n/a" if x is None or math.isnan(x) else f"{x:.4f}" for x in v))
                 for k, v in report.items() if isinstance(v, list)]
        return rows

    def export_tasks(self, model) -> List[Tuple[str, str, str]]:
        return [(t, t, f"logit_{t}") for t in model.tasks]

    def signature_set(self, model, schema=None):
        from export.preranking import PrerankingSignatureSet

        return PrerankingSignatureSet(model, schema)

    def run_pipeline(self, section, progress: Optional[Callable[[str], None]] = None,
                     progress_every: float = 5.0) -> Dict[str, Any]:
        from pipelines.hybrid_samples import run

        return run(section)

    def pipeline_stats(self, stats: Mapping[str, Any]) -> Dict[str, Any]:
        # One row of the Examples artifact is one request's list; its positive rate is the click rate on impressions.
        rates = stats["label_rate_on_impressions"]
        return {**stats, "rows_written": stats["requests_written"], "rows_rejected": stats["requests_rejected"],
                "positive_rate": {s: (rates[s] or {}).get("click") for s in rates}}

    def simulate(self, cfg, output: str) -> Dict[str, Any]:
        import dataclasses

        from tfrec.simulation.cascade import simulate_cascade

        return simulate_cascade(dataclasses.replace(cfg.cascade, output=output))


PRERANKING = register(PrerankingFamily())
