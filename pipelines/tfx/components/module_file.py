"""Loading a Trainer module file by path (TFX's ``module_file``), in the Trainer component's process or in each of its
workers (:mod:`pipelines.tfx.components.trainer_workers`)."""

from __future__ import annotations

import hashlib
import importlib.util
import sys

from pipelines.tfx.components import ComponentError


def load_module(path: str):
    """Imports the module file at ``path`` (a fresh module object each call)."""
    name = f"tfrec_user_trainer_{hashlib.sha1(path.encode()).hexdigest()[:8]}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look their module up there
    spec.loader.exec_module(module)
    if not callable(getattr(module, "run_fn", None)):
        raise ComponentError(f"trainer module {path} defines no run_fn(fn_args)")
    return module
