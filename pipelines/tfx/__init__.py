"""A TFX-style pipeline runner: components with typed artifacts, a SQLite metadata store, caching, resume.

    from pipelines.tfx import load_pipeline_config, run_pipeline
    result = run_pipeline(load_pipeline_config("configs/pipeline_criteo.yaml"))

Components (:mod:`pipelines.tfx.components`, in order): ExampleGen, StatisticsGen, SchemaGen,
ExampleValidator, Trainer (``run_fn(fn_args)``, TFX's module-file contract), Evaluator, Pusher.
"""

from pipelines.tfx.config import PipelineConfig, load_pipeline_config
from pipelines.tfx.runner import PipelineError, RunResult, run_pipeline

__all__ = ["PipelineConfig", "PipelineError", "RunResult", "load_pipeline_config", "run_pipeline"]
