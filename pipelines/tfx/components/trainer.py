"""Trainer: loads a module file by path and calls its ``run_fn(fn_args)`` (TFX's Trainer contract).

The default module is ``tfrec/trainer_module.py``. ``fn_args`` is :class:`tfrec.trainer_module.FnArgs`;
``custom_config`` carries the config sections the family's trainer reads (``tfrec.families.Family.trainer_sections``:
``data``, ``model``, ``loss``, ``train``, and ``preranking`` for the ``preranking`` family) and
``pipeline.custom_config`` as ``user``. The module file's contents
are part of the cache key. With ``pipeline.workers`` > 1 the module runs in that many local processes under
MultiWorkerMirroredStrategy (:mod:`pipelines.tfx.components.trainer_workers`).
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import os

from pipelines.tfx.artifacts import Model
from pipelines.tfx.components import ComponentError
from pipelines.tfx.components.example_gen import family
from pipelines.tfx.components.module_file import load_module

NAME = "trainer"
INPUTS = ("examples", "schema")
SERVING_MODEL_DIR = "serving_model_dir"
MODEL_RUN_DIR = "model_run_dir"


def module_path(cfg) -> str:
    if cfg.pipeline.trainer_module:
        return os.path.abspath(cfg.pipeline.trainer_module)
    import tfrec.trainer_module

    return os.path.abspath(tfrec.trainer_module.__file__)


def parameters(cfg):
    path = module_path(cfg)
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    sections = {k: dataclasses.asdict(getattr(cfg, k)) for k in family(cfg).trainer_sections}
    sections["data"].pop("dir")
    sections["train"].pop("model_dir")
    return {"module_file": path, "module_sha256": digest, "train_steps": cfg.pipeline.train_steps,
            "eval_steps": cfg.pipeline.eval_steps, "workers": cfg.pipeline.workers,
            "worker_timeout_s": cfg.pipeline.worker_timeout_s,
            "custom_config": {**sections, "user": cfg.pipeline.custom_config}}


def execute(ctx, inputs, params):
    from tfrec.trainer_module import FnArgs

    data_dir = inputs["examples"].path(ctx.root)
    serving = os.path.join(ctx.output_dir, SERVING_MODEL_DIR)
    fn_args = FnArgs(
        train_files=sorted(glob.glob(os.path.join(data_dir, "train-*.tfrecord.gz"))),
        eval_files=sorted(glob.glob(os.path.join(data_dir, "valid-*.tfrecord.gz"))),
        train_steps=params["train_steps"], eval_steps=params["eval_steps"], serving_model_dir=serving,
        model_run_dir=os.path.join(ctx.output_dir, MODEL_RUN_DIR), custom_config=params["custom_config"],
        schema_path=os.path.join(inputs["schema"].path(ctx.root), "schema.json"))
    workers = int(params.get("workers", 1))
    if workers > 1:
        from pipelines.tfx.components.trainer_workers import run_workers

        run_workers(fn_args, params["module_file"], workers, ctx.output_dir,
                    timeout_s=float(params.get("worker_timeout_s", 0.0)), printer=ctx.printer)
    else:
        load_module(params["module_file"]).run_fn(fn_args)
    if not os.path.exists(os.path.join(serving, "saved_model.pb")):
        raise ComponentError(f"run_fn of {params['module_file']} wrote no SavedModel to {serving}")
    return {"model": Model(uri=ctx.relative(ctx.output_dir),
                           properties={"serving_model_dir": SERVING_MODEL_DIR, "model_run_dir": MODEL_RUN_DIR})}
