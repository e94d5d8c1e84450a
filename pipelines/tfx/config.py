"""The pipeline config: typed dataclass sections read from YAML, validated, overridable with ``--set``.

:class:`PipelineConfig` is a :class:`tfrec.config.RunConfig` (its sections, read and validated the same way) with
three more: ``pipeline`` (root, metadata store, dataset family, serving base path, Beam args, Trainer module),
``validator`` (anomaly thresholds) and ``evaluator`` (blessing thresholds). ExampleGen reads the family's pipeline
section (``prepare``; ``hybrid`` for the ``preranking`` family) and the Trainer the family's trainer sections
(``data``, ``model``, ``train``; and ``preranking`` for the ``preranking`` family).

Example (``configs/pipeline_criteo.yaml``)::

    pipeline: {name: criteo, root: runs/pipeline, serving_base_path: runs/serving/ctr}
    prepare: {inputs: [data/raw/train.txt], beta_pos: 0.5}
"""

from __future__ import annotations

import dataclasses
import os
from typing import Annotated, Any, Dict, List, Literal, Optional, Sequence

from pydantic import Field

from tfrec.config import RunConfig, Section, check, deprecated, load_sections
from tfrec.config.base import CONFIG


@dataclasses.dataclass
class PipelineSection(Section):
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

    __pydantic_config__ = CONFIG
    config_key = "pipeline"

    name: str = "tfrec"
    root: str = ""
    metadata_path: str = ""
    family: str = "pointwise"
    serving_base_path: str = ""
    beam_args: List[str] = dataclasses.field(default_factory=list)
    trainer_module: str = ""
    train_steps: Annotated[int, Field(ge=0)] = 0
    eval_steps: Annotated[int, Field(ge=0)] = 0
    custom_config: Dict[str, Any] = dataclasses.field(default_factory=dict)
    workers: Annotated[int, Field(ge=1)] = 1
    worker_timeout_s: Annotated[float, Field(ge=0)] = 0.0

    def rules(self) -> None:
        from tfrec import families

        if self.family in families.registry.ALIASES:  # a name of an earlier release
            deprecated("pipeline.family", self.family, families.registry.canonical(self.family))
            self.family = families.registry.canonical(self.family)
        check(self.family in families.names(), "pipeline.family", self.family,
              f"must be one of {', '.join(families.names())}")
        check(bool(self.root), "pipeline.root", self.root, "must be set (the pipeline root directory)")
        check(bool(self.name), "pipeline.name", self.name, "must not be empty")
        check(not self.trainer_module or os.path.isfile(self.trainer_module), "pipeline.trainer_module",
               self.trainer_module, "must be an existing Python file")


@dataclasses.dataclass
class ValidatorConfig(Section):
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

    __pydantic_config__ = CONFIG
    config_key = "validator"

    positive_rate_drift: Annotated[float, Field(gt=0)] = 0.3
    max_out_of_range_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.01
    min_presence_ratio: Annotated[float, Field(gt=0, le=1)] = 0.5
    allow_anomalies: bool = False
    schema_path: str = ""


@dataclasses.dataclass
class EvaluatorConfig(Section):
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

    __pydantic_config__ = CONFIG
    config_key = "evaluator"

    split: Literal["train", "valid", "test"] = "test"
    min_auc: Annotated[float, Field(ge=0, le=1)] = 0.5
    max_logloss: Annotated[float, Field(ge=0)] = 0.0
    max_auc_drop: Annotated[float, Field(ge=0)] = 0.0
    task: Annotated[str, Field(min_length=1)] = "ctr"
    label: str = ""


@dataclasses.dataclass
class PipelineConfig(RunConfig):
    """The whole pipeline config: a :class:`tfrec.config.RunConfig` and the pipeline's own sections."""

    __pydantic_config__ = CONFIG

    pipeline: PipelineSection = dataclasses.field(default_factory=PipelineSection)
    validator: ValidatorConfig = dataclasses.field(default_factory=ValidatorConfig)
    evaluator: EvaluatorConfig = dataclasses.field(default_factory=EvaluatorConfig)

    @property
    def metadata_path(self) -> str:
        return self.pipeline.metadata_path or os.path.join(self.pipeline.root, "metadata.sqlite")


def load_pipeline_config(path: Optional[str], overrides: Sequence[str] = ()) -> PipelineConfig:
    """Reads and validates a pipeline config (file, then ``section.key=value`` overrides in order).

    Raises:
      tfrec.config.ConfigError: a missing file, a YAML error, an unknown key, a wrong type or an out-of-range value.
    """
    return load_sections(PipelineConfig, path, overrides)
