"""Pusher: copies a blessed SavedModel into the serving base path as the next version, atomically.

The copy goes to :func:`export.versions.staging_dir` (a name no loader picks up) and lands with one rename by
:func:`export.versions.publish`. A model that is not blessed is not pushed; ``push.json`` says why.
"""

from __future__ import annotations

import os
import shutil

from pipelines.tfx.artifacts import PushedModel
from pipelines.tfx.components import ComponentError, write_json

NAME = "pusher"
INPUTS = ("model", "blessing")


def parameters(cfg):
    if not cfg.pipeline.serving_base_path:
        raise ComponentError("pipeline.serving_base_path is empty; the Pusher needs a serving base path")
    return {"serving_base_path": os.path.abspath(cfg.pipeline.serving_base_path)}


def execute(ctx, inputs, params):
    from export.versions import list_versions, publish, remove_staging, staging_dir

    blessing, model = inputs["blessing"], inputs["model"]
    base = params["serving_base_path"]
    record = {"pushed": False, "version": None, "base_path": base}
    if not blessing.properties.get("blessed"):
        record["reason"] = "model not blessed: " + "; ".join(blessing.properties.get("reasons", []))
        ctx.printer(f"      nothing pushed ({record['reason']}); serving versions stay {list_versions(base)}")
    else:
        staged = staging_dir(base)
        try:
            shutil.copytree(os.path.join(model.path(ctx.root), model.properties["serving_model_dir"]), staged)
            version = publish(staged, base)
        except BaseException:
            remove_staging(staged)
            raise
        record.update(pushed=True, version=version, path=os.path.join(base, str(version)))
        ctx.printer(f"      pushed {model.uri} as version {version} under {base}")
    write_json(os.path.join(ctx.output_dir, "push.json"), record)
    return {"pushed_model": PushedModel(uri=ctx.relative(ctx.output_dir), properties=record)}
