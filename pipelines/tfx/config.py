"""The pipeline config: typed dataclass sections read from YAML, validated, overridable with ``--set``.

Sections: ``pipeline`` (root, metadata store, dataset family, serving base path, Beam args, Trainer module),
``validator`` (anomaly thresholds), ``evaluator`` (blessing thresholds), and tfrec's own ``prepare``, ``data``,
``model``, ``loss``, ``train`` (see :mod:`tfrec.config`), which ExampleGen and the Trainer read; the ``preranking``
family reads ``hybrid`` (ExampleGen: :class:`tfrec.config.HybridSamplesConfig`) and ``preranking`` (the Trainer:
:class:`tfrec.config.PrerankingConfig`) instead of ``prepare`` and ``model``.

Example (``configs/pipeline_criteo.yaml``)::

    pipeline: {name: criteo, root: runs/pipeline, serving_base_path: runs/serving/ctr}
    prepare: {inputs: [data/raw/train.txt], beta_pos: 0.5}
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Dict, List, Optional, Sequence

from tfrec.config import (DataConfig, HybridSamplesConfig, LossConfig, ModelConfig, PrepareConfig, PrerankingConfig,
                          TrainConfig, apply_config, check, deprecated)


@dataclasses.dataclass
class PipelineSection:
    """Where the pipeline runs and what it pushes to.

    Attributes:
      name: pipeline name (runs are grouped by it in the metadata store).
      root: pipeline root; artifacts go to ``<root>/<component>/<run id>/``.
      metadata_path: SQLite metadata store (default ``<root>/metadata.sqlite``).
      family: the dataset family (``tfrec.families``: ``pointwise``, ``multitask``, ``preranking``).
      serving_base_path: TF Serving base path the Pusher publishes versions to.
      beam_args: Beam pipeline arguments for ExampleGen (``--runner=FlinkRunner --flink_master=...``).
      trainer_module: a module file defining ``run_fn(fn_args)`` (default: ``tfrec/trainer_module.py``).
      train_steps: total training steps (0: one pass over the train split per epoch).
      eval_steps: validation steps per epoch (0: the whole valid split).
      custom_config: extra mapping handed to ``run_fn`` as ``fn_args.custom_config["user"]``.
      workers: Trainer processes; > 1 runs ``run_fn`` in that many local processes on loopback ports under
        MultiWorkerMirroredStrategy (each with its own ``TF_CONFIG``; worker 0 is the chief and exports).
      worker_timeout_s: with ``workers`` > 1, the longest the Trainer waits for its processes (0: no limit). Past it
        they are stopped and the component fails, so a worker stuck in a collective fails the run instead of
        holding it.
    """

    name: str = "tfrec"
    root: str = ""
    metadata_path: str = ""
    family: str = "pointwise"
    serving_base_path: str = ""
    beam_args: List[str] = dataclasses.field(default_factory=list)
    trainer_module: str = ""
    train_steps: int = 0
    eval_steps: int = 0
    custom_config: Dict[str, Any] = dataclasses.field(default_factory=dict)
    workers: int = 1
    worker_timeout_s: float = 0.0

    def validate(self) -> None:
        from tfrec import families

        if self.family in families.registry.ALIASES:  # a name of an earlier release
            deprecated("pipeline.family", self.family, families.registry.canonical(self.family))
            self.family = families.registry.canonical(self.family)
        check(self.family in families.names(), "pipeline.family", self.family,
              f"must be one of {', '.join(families.names())}")
        check(bool(self.root), "pipeline.root", self.root, "must be set (the pipeline root directory)")
        check(bool(self.name), "pipeline.name", self.name, "must not be empty")
        check(self.train_steps >= 0, "pipeline.train_steps", self.train_steps, "must be >= 0")
        check(self.eval_steps >= 0, "pipeline.eval_steps", self.eval_steps, "must be >= 0")
        check(self.workers >= 1, "pipeline.workers", self.workers, "must be >= 1")
        check(self.worker_timeout_s >= 0, "pipeline.worker_timeout_s", self.worker_timeout_s,
              "must be >= 0 (0: no limit)")
        check(not self.trainer_module or os.path.isfile(self.trainer_module), "pipeline.trainer_module",
               self.trainer_module, "must be an existing Python file")


@dataclasses.dataclass
class ValidatorConfig:
    """ExampleValidator thresholds.

    Attributes:
      positive_rate_drift: largest relative change of the train positive rate against the schema's,
        ``|p - p_ref| / p_ref``, before it is an anomaly.
      max_out_of_range_fraction: largest share of a numeric feature's present values outside the schema's range.
      min_presence_ratio: a feature whose presence falls below this share of the schema's presence is missing.
      allow_anomalies: report anomalies but carry on (the override).
      schema_path: a curated schema.json to validate against (default: the schema of the last complete run,
        or of this run's data on the first run).
    """

    positive_rate_drift: float = 0.3
    max_out_of_range_fraction: float = 0.01
    min_presence_ratio: float = 0.5
    allow_anomalies: bool = False
    schema_path: str = ""

    def validate(self) -> None:
        check(self.positive_rate_drift > 0, "validator.positive_rate_drift", self.positive_rate_drift, "must be > 0")
        check(0 <= self.max_out_of_range_fraction < 1, "validator.max_out_of_range_fraction",
               self.max_out_of_range_fraction, "must be in [0, 1)")
        check(0 < self.min_presence_ratio <= 1, "validator.min_presence_ratio", self.min_presence_ratio,
               "must be in (0, 1]")


@dataclasses.dataclass
class EvaluatorConfig:
    """Evaluator thresholds; a model is blessed only if it passes all of them.

    Attributes:
      split: the evaluation split.
      min_auc: absolute lower bound on the AUC.
      max_logloss: absolute upper bound on the logloss (0 disables).
      max_auc_drop: against the last blessed model: the candidate's AUC must be >= baseline AUC - max_auc_drop.
      task: the exported task whose probability is scored (``ctr``; a multi-task model also has ``ctcvr``, ...).
      label: the label feature it is scored against (default: the family's label of ``task``, e.g. ``click``
        for ``ctr`` and ``conversion`` for ``ctcvr`` in the multi-task family).
    """

    split: str = "test"
    min_auc: float = 0.5
    max_logloss: float = 0.0
    max_auc_drop: float = 0.0
    task: str = "ctr"
    label: str = ""

    def validate(self) -> None:
        check(bool(self.task), "evaluator.task", self.task, "must not be empty")
        check(self.split in ("train", "valid", "test"), "evaluator.split", self.split, "must be train, valid or test")
        check(0 <= self.min_auc <= 1, "evaluator.min_auc", self.min_auc, "must be in [0, 1]")
        check(self.max_logloss >= 0, "evaluator.max_logloss", self.max_logloss, "must be >= 0")
        check(self.max_auc_drop >= 0, "evaluator.max_auc_drop", self.max_auc_drop, "must be >= 0")


@dataclasses.dataclass
class PipelineConfig:
    """The whole pipeline config."""

    pipeline: PipelineSection = dataclasses.field(default_factory=PipelineSection)
    validator: ValidatorConfig = dataclasses.field(default_factory=ValidatorConfig)
    evaluator: EvaluatorConfig = dataclasses.field(default_factory=EvaluatorConfig)
    prepare: PrepareConfig = dataclasses.field(default_factory=PrepareConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    hybrid: HybridSamplesConfig = dataclasses.field(default_factory=HybridSamplesConfig)
    preranking: PrerankingConfig = dataclasses.field(default_factory=PrerankingConfig)

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            getattr(self, f.name).validate()

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def metadata_path(self) -> str:
        return self.pipeline.metadata_path or os.path.join(self.pipeline.root, "metadata.sqlite")


def load_pipeline_config(path: Optional[str], overrides: Sequence[str] = ()) -> PipelineConfig:
    """Reads and validates a pipeline config (file, then ``section.key=value`` overrides in order).

    Raises:
      tfrec.config.ConfigError: a missing file, a YAML error, an unknown key, a wrong type or an out-of-range value.
    """
    return apply_config(PipelineConfig(), path, overrides)
