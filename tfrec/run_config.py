"""The saved config of a training run, and the architecture it fixes for the commands that load the run.

``tfrec train`` writes its whole config to ``<model_dir>/config.yaml``, with the model its family trained
(``model.name`` and every setting of the model's section). The weights in ``<model_dir>/best/`` fit only the network
that config built, so every loader of a finished run (``tfrec evaluate``, ``export``, ``calibration``;
:meth:`tfrec.families.Family.load_trained`) takes the ``model`` section from there; the reader, list sizes and
report K values stay the caller's.

A command line may repeat a saved value (``--set model.name=mmoe`` on an MMoE run) but not contradict it:
:func:`load_for_run` raises a :class:`tfrec.config.ConfigError` naming the first key that differs (the model's loss
settings, ``model.loss.*``, do not change the network and are not compared). A run directory without
``config.yaml`` (written by other tools) keeps the caller's config. A ``config.yaml`` of the previous release is read
through :mod:`tfrec.config.legacy`.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

from tfrec.config import ConfigError, RunConfig, load_config, read_yaml
from tfrec.config.legacy import is_legacy

RUN_CONFIG_FILE = "config.yaml"


def run_config_path(model_dir: str) -> str:
    return os.path.join(model_dir, RUN_CONFIG_FILE)


def saved_run_config(model_dir: str) -> Optional[RunConfig]:
    """The config a run saved in ``<model_dir>/config.yaml``; None when there is none.

    Raises:
      ConfigError: the file exists but is not a valid config (names the file).
    """
    path = run_config_path(model_dir) if model_dir else ""
    if not path or not os.path.exists(path):
        return None
    try:
        return load_config(path)
    except ConfigError as e:
        raise ConfigError(f"the run's saved config {path} is not readable: {e}") from None


def saved_model_name(model_dir: str) -> Optional[str]:
    """The model name the run in ``model_dir`` trained (its ``config.yaml``); None when the run saved no config or
    one of the previous release, which did not name every family's model (the dataset's family decides then)."""
    path = run_config_path(model_dir) if model_dir else ""
    if not path or not os.path.exists(path) or is_legacy(read_yaml(path)):
        return None
    saved = saved_run_config(model_dir)
    return saved.model.name if saved is not None else None


def _flat(prefix: str, obj: Any) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            out.update(_flat(f"{prefix}{f.name}.", value))
        else:
            out[f"{prefix}{f.name}"] = value
    return out


def architecture_keys(cfg: RunConfig) -> List[str]:
    """The dotted keys the saved architecture fixes: every ``model.*`` key but the loss settings."""
    return [k for k in _flat("model.", cfg.model) if not k.startswith("model.loss.")]


def with_architecture(cfg: RunConfig, saved: RunConfig) -> RunConfig:
    """A copy of ``cfg`` whose ``model`` section is ``saved``'s."""
    out = copy.deepcopy(cfg)
    out.model = copy.deepcopy(saved.model)
    return out


def with_run_architecture(cfg: RunConfig) -> RunConfig:
    """``cfg`` with the architecture of the run in ``cfg.train.model_dir`` (``cfg`` itself when the run saved no
    config)."""
    saved = saved_run_config(cfg.train.model_dir)
    return cfg if saved is None else with_architecture(cfg, saved)


def conflicts(cfg: RunConfig, saved: RunConfig) -> List[Tuple[str, object, object]]:
    """``(key, saved value, value in cfg)`` for every architecture key where ``cfg`` differs from ``saved``."""
    ours, theirs = _flat("model.", cfg.model), _flat("model.", saved.model)
    keys = architecture_keys(saved) + [k for k in architecture_keys(cfg) if k not in theirs]
    return [(k, theirs.get(k), ours.get(k)) for k in keys if theirs.get(k) != ours.get(k)]


def load_for_run(path: Optional[str], overrides: Sequence[str], model_dir: str,
                 values: Optional[Dict[str, Any]] = None) -> RunConfig:
    """The config of a command that loads the finished run in ``model_dir``: the defaults with the run's saved
    architecture, then the YAML file ``path``, the command's flag ``values`` and the ``section.key=value``
    ``overrides``.

    Raises:
      ConfigError: the file or an override sets an architecture key to another value than the run's (one line
        naming the key, the run's value and the value received), or any config error of :func:`load_config`.
    """
    saved = saved_run_config(model_dir)
    if saved is None:
        return load_config(path, overrides, values=values)
    cfg = load_config(path, overrides, base=with_architecture(RunConfig(), saved), values=values)
    found = conflicts(cfg, saved)
    if found:
        key, kept, given = found[0]
        raise ConfigError(f"`{key}` contradicts the architecture of the trained run in {model_dir} ({key}={kept!r} "
                          f"in {run_config_path(model_dir)}); drop the setting, the run's architecture is used. "
                          f"Received: {key}={given!r}")
    return cfg
