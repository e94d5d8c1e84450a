"""tfrec's TFX components (TFX 1.15): standard artifact types in and out, so they sit beside stock components.

==========================  =====================================  ==========================================
component                   inputs                                 outputs
==========================  =====================================  ==========================================
TfrecExampleGen             (raw logs, from ``config``)            ``examples``: Examples (``Split-train``,
                                                                   ``Split-valid``, ``Split-test``; GZIP
                                                                   TFRecords; tfrec's side files in its root)
ValidationGate              ``statistics``, ``schema``,            ``anomalies``: ExampleAnomalies
                            ``anomalies`` (stock ExampleValidator)
ListwiseStatisticsGen       ``examples`` (hybrid samples)          ``statistics``: ExampleStatistics
                                                                   (tfrec's ``statistics.json``)
ListwiseExampleValidator    ``statistics``, ``examples``           ``anomalies``: ExampleAnomalies
TfrecEvaluator              ``examples``, ``model``                ``blessing``: ModelBlessing
==========================  =====================================  ==========================================

ExampleGen runs the family's Beam pipeline with the pipeline's ``beam_pipeline_args`` (any Beam runner). The two
validators stop the run (the component fails with the anomalies named) unless ``allow_anomalies`` is set; the
data that passes becomes the reference of the next run (``baseline_dir``). TfrecEvaluator blesses a model that
passes the thresholds and is no worse than the model serving now (``serving_base_path``), with tfrec's exact
metrics (see :class:`pipelines.tfx_native.executors.EvaluatorExecutor`).
"""

from __future__ import annotations

from typing import Optional

from tfx import types
from tfx.dsl.components.base import base_beam_component, base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from pipelines.tfx_native import executors


class TfrecExampleGenSpec(ComponentSpec):
    PARAMETERS = {"family": ExecutionParameter(type=str), "config": ExecutionParameter(type=str),
                  "input_fingerprint": ExecutionParameter(type=str)}
    INPUTS = {}
    OUTPUTS = {"examples": ChannelParameter(type=standard_artifacts.Examples)}


class TfrecExampleGen(base_beam_component.BaseBeamComponent):
    """A dataset family's Beam pipeline as a TFX ExampleGen.

    Args:
      family: ``pointwise``, ``multitask`` or ``preranking`` (:mod:`tfrec.families`; the older names read too).
      config: JSON of the tfrec config sections the family reads (``{"prepare": {...}}``, or ``{"hybrid": {...}}``).
      input_fingerprint: identifies the raw input files (paths, sizes, modification times); part of TFX's cache
        key, since an ExampleGen has no input artifact.
    """

    SPEC_CLASS = TfrecExampleGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executors.ExampleGenExecutor)

    def __init__(self, family: str, config: str, input_fingerprint: str = ""):
        super().__init__(spec=TfrecExampleGenSpec(
            family=family, config=config, input_fingerprint=input_fingerprint,
            examples=types.Channel(type=standard_artifacts.Examples)))


class ValidationGateSpec(ComponentSpec):
    PARAMETERS = {"params": ExecutionParameter(type=str), "baseline_dir": ExecutionParameter(type=str)}
    INPUTS = {"statistics": ChannelParameter(type=standard_artifacts.ExampleStatistics),
              "schema": ChannelParameter(type=standard_artifacts.Schema),
              "anomalies": ChannelParameter(type=standard_artifacts.ExampleAnomalies)}
    OUTPUTS = {"gate_anomalies": ChannelParameter(type=standard_artifacts.ExampleAnomalies)}


class ValidationGate(base_component.BaseComponent):
    """Validates this run's data against the last validated data with TFDV and stops the run on anomalies.

    Args:
      statistics, schema: StatisticsGen's and SchemaGen's outputs.
      anomalies: the stock ExampleValidator's output (its anomalies count too).
      params: JSON: ``labels``, ``positive_rate_drift``, ``max_out_of_range_fraction``, ``allow_anomalies``.
      baseline_dir: where the last validated data's schema and statistics are kept.
    """

    SPEC_CLASS = ValidationGateSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executors.ValidationGateExecutor)

    def __init__(self, statistics: types.BaseChannel, schema: types.BaseChannel, anomalies: types.BaseChannel,
                 params: str, baseline_dir: str):
        super().__init__(spec=ValidationGateSpec(
            statistics=statistics, schema=schema, anomalies=anomalies, params=params, baseline_dir=baseline_dir,
            gate_anomalies=types.Channel(type=standard_artifacts.ExampleAnomalies)))


class ListwiseStatisticsGenSpec(ComponentSpec):
    PARAMETERS = {"params": ExecutionParameter(type=str),
                  "dataset_dir": ExecutionParameter(type=str, optional=True)}
    INPUTS = {"examples": ChannelParameter(type=standard_artifacts.Examples)}
    OUTPUTS = {"statistics": ChannelParameter(type=standard_artifacts.ExampleStatistics)}


class ListwiseStatisticsGen(base_component.BaseComponent):
    """Statistics of ``ExampleListWithContext`` records (context and per-item features, label rates on
    impressions): ``statistics.json``, which TFDV does not read.

    Args:
      examples: the Examples: tfrec's ExampleGen's, or a stock ``ImportExampleGen``'s over ``tfrec prepare-hybrid``
        output (then give ``dataset_dir``).
      params: JSON of ``pipelines.tfx.components.statistics_gen.parameters``
        (``{"labels": [...], "records": "ExampleListWithContext"}``).
      dataset_dir: the prepared directory whose side files (``schema.json``, ``items.jsonl``) to read, when the
        Examples artifact has none (a stock ExampleGen wrote it); by default the artifact's own.
    """

    SPEC_CLASS = ListwiseStatisticsGenSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executors.ListwiseStatisticsGenExecutor)

    def __init__(self, examples: types.BaseChannel, params: str, dataset_dir: Optional[str] = None):
        super().__init__(spec=ListwiseStatisticsGenSpec(
            examples=examples, params=params, dataset_dir=dataset_dir,
            statistics=types.Channel(type=standard_artifacts.ExampleStatistics)))


class ListwiseExampleValidatorSpec(ComponentSpec):
    PARAMETERS = {"params": ExecutionParameter(type=str), "baseline_dir": ExecutionParameter(type=str),
                  "dataset_dir": ExecutionParameter(type=str, optional=True)}
    INPUTS = {"statistics": ChannelParameter(type=standard_artifacts.ExampleStatistics),
              "examples": ChannelParameter(type=standard_artifacts.Examples)}
    OUTPUTS = {"anomalies": ChannelParameter(type=standard_artifacts.ExampleAnomalies)}


class ListwiseExampleValidator(base_component.BaseComponent):
    """tfrec's list-wise checks (missing / new features, out-of-range values, drift of the impressions' label
    rates) against the last validated data; stops the run on anomalies.

    Args:
      statistics, examples: ListwiseStatisticsGen's output and its Examples.
      params: JSON of ``pipelines.tfx.components.example_validator.parameters``.
      baseline_dir: where the last validated data's statistics are kept.
      dataset_dir: as :class:`ListwiseStatisticsGen`'s.
    """

    SPEC_CLASS = ListwiseExampleValidatorSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executors.ListwiseExampleValidatorExecutor)

    def __init__(self, statistics: types.BaseChannel, examples: types.BaseChannel, params: str, baseline_dir: str,
                 dataset_dir: Optional[str] = None):
        super().__init__(spec=ListwiseExampleValidatorSpec(
            statistics=statistics, examples=examples, params=params, baseline_dir=baseline_dir,
            dataset_dir=dataset_dir,
            anomalies=types.Channel(type=standard_artifacts.ExampleAnomalies)))


class TfrecEvaluatorSpec(ComponentSpec):
    PARAMETERS = {"params": ExecutionParameter(type=str),
                  "serving_base_path": ExecutionParameter(type=str, optional=True),
                  "dataset_dir": ExecutionParameter(type=str, optional=True)}
    INPUTS = {"examples": ChannelParameter(type=standard_artifacts.Examples),
              "model": ChannelParameter(type=standard_artifacts.Model)}
    OUTPUTS = {"blessing": ChannelParameter(type=standard_artifacts.ModelBlessing)}


class TfrecEvaluator(base_component.BaseComponent):
    """tfrec's Evaluator: the candidate's exact AUC / logloss through its serving signature (``score_candidates``
    on the impressions of list-wise records), the thresholds and the model serving now; writes a standard
    ModelBlessing.

    Args:
      examples, model: the Examples (tfrec's ExampleGen's, or a stock ``ImportExampleGen``'s over ``tfrec prepare``
        / ``tfrec prepare-hybrid`` output: then give ``dataset_dir``) and the Trainer's Model.
      params: JSON of ``pipelines.tfx.components.evaluator.parameters`` (a pipeline config of the examples'
        family).
      serving_base_path: the Pusher's base directory; its newest version is the model to beat.
      dataset_dir: the prepared directory whose ``schema.json`` names the examples' family, when the Examples
        artifact has no side files (a stock ExampleGen wrote it); by default the artifact's own.
    """

    SPEC_CLASS = TfrecEvaluatorSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executors.EvaluatorExecutor)

    def __init__(self, examples: types.BaseChannel, model: types.BaseChannel, params: str,
                 serving_base_path: Optional[str] = None, dataset_dir: Optional[str] = None):
        super().__init__(spec=TfrecEvaluatorSpec(
            examples=examples, model=model, params=params, serving_base_path=serving_base_path,
            dataset_dir=dataset_dir, blessing=types.Channel(type=standard_artifacts.ModelBlessing)))
