"""The local pipeline runner: component order, caching, resume and run records.

``run_pipeline(cfg)`` runs :data:`pipelines.tfx.components.ORDER` in order. For each component it resolves the
inputs (upstream outputs of this run; the Validator's reference schema and the Evaluator's last blessed model
from the metadata store), computes the cache key (:func:`pipelines.tfx.metadata.cache_key`: component name,
parameters, input fingerprints, code version = tfrec's version and the SHA-256 of the component's module) and

* reuses the outputs of a COMPLETE execution with that key whose artifact directories still exist (status
  CACHED, nothing runs), or
* executes it into ``<root>/<component>/<run id>/`` and records the execution (COMPLETE or FAILED, with its
  inputs, outputs, parameters, start and end time).

``resume=True`` reuses the run id of the pipeline's last run when it did not complete: the components that
finished are cached, and the first unfinished one runs again in its own directory, so the Trainer's
``BackupAndRestore`` continues the killed attempt instead of starting over.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import importlib
import os
import shutil
import sys
import uuid
from typing import Callable, Dict, List, Optional

import pipelines.tfx.metadata as md
from pipelines.tfx.artifacts import Artifact
from pipelines.tfx.components import ORDER, ComponentError, Context
from pipelines.tfx.config import PipelineConfig

#: input name -> (upstream component, output name), per component.
WIRING = {
    "statistics_gen": {"examples": ("example_gen", "examples")},
    "schema_gen": {"statistics": ("statistics_gen", "statistics")},
    "example_validator": {"statistics": ("statistics_gen", "statistics"), "examples": ("example_gen", "examples")},
    "trainer": {"examples": ("example_gen", "examples"), "schema": ("schema_gen", "schema")},
    "evaluator": {"examples": ("example_gen", "examples"), "model": ("trainer", "model")},
    "pusher": {"model": ("trainer", "model"), "blessing": ("evaluator", "blessing")},
}


class PipelineError(RuntimeError):
    """A pipeline run failed; the message names the component and the reason."""


@dataclasses.dataclass
class RunResult:
    """What a run did.

    Attributes:
      run_id: the run's id.
      executed: components that ran, in order.
      cached: components whose outputs were reused.
      outputs: component -> {output name: Artifact}.
      root: the pipeline root.
    """

    run_id: str
    executed: List[str]
    cached: List[str]
    outputs: Dict[str, Dict[str, Artifact]]
    root: str


def package_versions() -> Dict[str, str]:
    from importlib import metadata as im

    out = {"python": sys.version.split()[0]}
    for name in ("tfrec", "tensorflow", "tf-keras", "apache-beam", "numpy"):
        try:
            out[name] = im.version(name)
        except im.PackageNotFoundError:
            out[name] = "not installed"
    import tfrec

    out["tfrec"] = tfrec.__version__
    return out


def code_version(module) -> str:
    import tfrec

    with open(module.__file__, "rb") as f:
        return f"{tfrec.__version__}:{hashlib.sha256(f.read()).hexdigest()[:16]}"


def _new_run_id() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]


def _exists(root: str, outputs: Dict[str, Artifact]) -> bool:
    return all(a is None or os.path.isdir(a.path(root)) for a in outputs.values())


def _reference_schema(store: md.MetadataStore, pipeline: str, outputs) -> Optional[Artifact]:
    """The schema of the pipeline's last complete run (its data passed validation), else this run's."""
    last = store.last_run(pipeline, status=md.COMPLETE)
    if last is not None:
        for e in store.executions(last["run_id"]):
            if e["component"] == "schema_gen" and e["outputs"].get("schema") is not None:
                return e["outputs"]["schema"]
    return outputs["schema_gen"]["schema"]


def _baseline_model(store: md.MetadataStore, candidate: Artifact) -> Optional[Artifact]:
    """The model of the newest blessing that blessed a model other than ``candidate``."""
    blessing = store.latest_output("evaluator", "blessing", where=lambda a: a.properties.get("blessed")
                                   and a.properties.get("model_fingerprint") != candidate.fingerprint)
    if blessing is None:
        return None
    return store.latest_output("trainer", "model",
                               where=lambda a: a.fingerprint == blessing.properties["model_fingerprint"])


def run_pipeline(cfg: PipelineConfig, resume: bool = False, printer: Callable[[str], None] = print) -> RunResult:
    """Runs the pipeline; see the module docstring.

    Raises:
      PipelineError: a component failed (the run is recorded as FAILED; ``resume=True`` continues it).
    """
    root = os.path.abspath(cfg.pipeline.root)
    os.makedirs(root, exist_ok=True)
    store = md.MetadataStore(cfg.metadata_path if os.path.isabs(cfg.metadata_path)
                             else os.path.abspath(cfg.metadata_path))
    try:
        return _run(cfg, root, store, resume, printer)
    finally:
        store.close()


def _run(cfg, root, store, resume, printer) -> RunResult:
    last = store.last_run(cfg.pipeline.name) if resume else None
    if resume and last is not None and last["status"] != md.COMPLETE:
        run_id = last["run_id"]
        store.reopen_run(run_id)
        previous = {e["component"]: e for e in store.executions(run_id)}
        printer(f"resuming run {run_id} of pipeline {cfg.pipeline.name}")
    else:
        if resume:
            printer(f"no unfinished run of pipeline {cfg.pipeline.name} to resume; starting a new run")
        run_id, previous = _new_run_id(), {}
        store.start_run(run_id, cfg.pipeline.name, cfg.to_dict(), package_versions())
        printer(f"run {run_id} of pipeline {cfg.pipeline.name} (root {root})")
    outputs: Dict[str, Dict[str, Artifact]] = {}
    executed, cached = [], []
    for i, name in enumerate(ORDER, 1):
        module = importlib.import_module(f"pipelines.tfx.components.{name}")
        inputs = {k: outputs[c][o] for k, (c, o) in WIRING.get(name, {}).items()}
        if name == "example_validator":
            inputs["schema"] = _reference_schema(store, cfg.pipeline.name, outputs)
        if name == "evaluator":
            inputs["baseline_model"] = _baseline_model(store, inputs["model"])
        try:
            params = module.parameters(cfg)
        except ComponentError as e:
            store.end_run(run_id, md.FAILED, str(e))
            raise PipelineError(f"{name}: {e}") from None
        key = md.cache_key(name, params, inputs, code_version(module))
        hit = store.cached_outputs(key)
        if hit is not None and _exists(root, hit):
            eid = store.start_execution(run_id, name, key, params, inputs)
            store.end_execution(eid, md.CACHED, hit)
            outputs[name] = hit
            cached.append(name)
            printer(f"[{i}/{len(ORDER)}] {name}: cached")
            continue
        out_dir = os.path.join(root, name, run_id)
        attempt = previous.get(name)
        if os.path.exists(out_dir) and not (attempt is not None and attempt["cache_key"] == key):
            shutil.rmtree(out_dir)  # another configuration's leftovers: start clean
        os.makedirs(out_dir, exist_ok=True)
        printer(f"[{i}/{len(ORDER)}] {name}: running" + (" (resuming the unfinished attempt)"
                                                        if attempt is not None and attempt["cache_key"] == key
                                                        else ""))
        eid = store.start_execution(run_id, name, key, params, inputs)
        ctx = Context(root=root, output_dir=out_dir, run_id=run_id, cfg=cfg, printer=printer)
        try:
            produced = module.execute(ctx, inputs, params)
        except BaseException as e:
            message = " ".join(str(e).split()) if not isinstance(e, ComponentError) else str(e)
            store.end_execution(eid, md.FAILED, error=message or type(e).__name__)
            store.end_run(run_id, md.FAILED, f"{name}: {message}")
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise
            raise PipelineError(f"{name} failed: {message}") from e
        for out_name, artifact in produced.items():
            artifact.fingerprint = hashlib.sha256(f"{key}:{out_name}".encode()).hexdigest()
        store.end_execution(eid, md.COMPLETE, produced)
        outputs[name] = produced
        executed.append(name)
    store.end_run(run_id, md.COMPLETE)
    printer(f"run {run_id}: complete; executed {executed or 'nothing'}; cached {cached or 'nothing'}")
    return RunResult(run_id=run_id, executed=executed, cached=cached, outputs=outputs, root=root)
