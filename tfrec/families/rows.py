"""What the two row families (``pointwise`` and ``multitask``: one ``tf.Example`` per row) share.

Both read sharded GZIP TFRecords of ``tf.Example`` (:mod:`tfrec.data`), build their model from the dataset's
vocabularies and numeric transform (:func:`tfrec.train.build_model`), train with :func:`tfrec.train.train_rows`
and report exact metrics of every row of a split (:mod:`tfrec.evaluate`). A subclass says which models it owns,
how its labels and metrics read, which loss Keras compiles and which Beam pipeline and simulator make its data.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from tfrec.families.base import EXAMPLE, Family

#: The prepared dataset's metrics file of the row families (one entry per split).
METRICS_FILE = "metrics.json"


class RowFamily(Family):
    """A family of ``tf.Example`` rows (module docstring)."""

    records = EXAMPLE
    unit = "rows"
    batch_defaults = (4096, 16384)
    throughput_unit = "examples"
    pipeline_section = "prepare"
    trainer_sections = ("data", "model", "train")
    calibration = True

    # ------------------------------------------------------------------------------------------------ data

    def schema_class(self):
        """The schema class of its datasets (``tfrec.features``), read from ``schema.json``."""
        raise NotImplementedError

    def load_schema(self, data_dir: str):
        from tfrec.families.registry import read_schema_json

        self.check_dataset(data_dir)
        return self.schema_class().from_json(read_schema_json(data_dir))

    # -------------------------------------------------------------------------------------- train, evaluate

    def keras_loss(self, cfg):
        """The loss Keras compiles the model with (None: the model computes its own)."""
        return None

    def monitor(self, cfg) -> str:
        """The Keras log name of ``cfg.train.monitor``."""
        return cfg.train.monitor

    def prediction_outputs(self, model) -> Tuple[str, ...]:
        """The model outputs a report reads."""
        raise NotImplementedError

    def report(self, y, p, w) -> Dict[str, Any]:
        """The report of predictions ``p`` (as :func:`tfrec.evaluate.predict_split` returns them), labels ``y``
        and weights ``w``."""
        raise NotImplementedError

    def validation_metrics(self, model, y, p, w) -> Dict[str, float]:
        """The exact validation metrics of the training logs (without ``val_``) of the valid split's predictions;
        NaN for every metric when a prediction is not finite."""
        raise NotImplementedError

    def train(self, cfg, printer: Callable[[str], None] = print, extra_callbacks: Optional[list] = None):
        from tfrec.train import train_rows

        return train_rows(self.resolve(cfg), self, printer=printer, extra_callbacks=extra_callbacks)

    def load_trained(self, cfg):
        from tfrec.run_config import with_run_architecture
        from tfrec.train import load_trained_rows

        return load_trained_rows(self.resolve(with_run_architecture(cfg)))

    def evaluate(self, cfg, split: str = "test", model=None, output: Optional[str] = None) -> Dict[str, Any]:
        from tfrec import data as data_lib
        from tfrec.evaluate import predict_split, record_report

        if split not in data_lib.SPLITS:
            raise ValueError(f"`split` must be one of {data_lib.SPLITS}. Received: split={split!r}")
        model = model if model is not None else self.load_trained(cfg)
        cfg = cfg.with_batch_defaults(*self.batch_defaults)
        p, y, w = predict_split(model, cfg.data.dir, split, cfg.data.eval_batch_size,
                                outputs=self.prediction_outputs(model), beta_pos=cfg.data.beta_pos)
        report = self.report(y, p, w)
        record_report(output or os.path.join(cfg.train.model_dir, METRICS_FILE), split, report)
        return report

    # ---------------------------------------------------------------------------------------------- export

    def signature_set(self, model, schema=None):
        from export.signatures import SignatureSet

        return SignatureSet(model, schema)

    # ------------------------------------------------------------------------------------------ pipeline

    def run_pipeline(self, section, progress: Optional[Callable[[str], None]] = None,
                     progress_every: float = 5.0) -> Dict[str, Any]:
        return self._pipeline()(section, progress=progress, progress_every=progress_every)

    def _pipeline(self) -> Callable[..., Dict[str, Any]]:
        raise NotImplementedError

    def summary_rates(self) -> Sequence[Tuple[str, str]]:
        """``(label, stats key)`` of the train-split rates ``tfrec prepare`` prints."""
        return ()


def rows_of(report: Mapping[str, Any], keys: Sequence[str]) -> List[Tuple[str, Any]]:
    """``[(key, report[key])]`` for ``keys``."""
    return [(k, report[k]) for k in keys]
