"""The saved config of a training run, and the architecture it fixes for the commands that load the run.

``tfrec train`` writes its whole config to ``<model_dir>/config.yaml``. The weights in ``<model_dir>/best/`` fit
only the network that config built, so every loader of a finished run (``tfrec evaluate``, ``export``,
``calibration``; :func:`tfrec.train.load_trained_model`, :func:`tfrec.train_preranking.load_trained_preranking`)
takes the architecture from there:

* the whole ``model`` section (point-wise and multi-task models: ``model.name``, layer sizes, tasks, ...);
* the keys of the ``preranking`` section that build the Three-Tower model
  (:meth:`tfrec.config.PrerankingConfig.model_kwargs`); its list sizes and report K values stay the caller's.

A command line may repeat a saved value (``--set model.name=mmoe`` on an MMoE run) but not contradict it:
:func:`load_for_run` raises a :class:`tfrec.config.ConfigError` naming the first key that differs. A run directory
without ``config.yaml`` (written by other tools) keeps the caller's config.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from typing import List, Optional, Sequence, Tuple

from tfrec.config import ConfigError, PrerankingConfig, RunConfig, load_config

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
    """The model name of the run saved in ``model_dir`` when its config tells the family, else None (the
    dataset's family decides, :func:`tfrec.families.family_of_run`)."""
    return None


def _preranking_keys() -> Tuple[str, ...]:
    return tuple(PrerankingConfig().model_kwargs())


def architecture_keys(cfg: RunConfig) -> List[str]:
    """The dotted keys the saved architecture fixes (``model.*`` and the model keys of ``preranking``)."""
    return ([f"model.{f.name}" for f in dataclasses.fields(cfg.model)]
            + [f"preranking.{k}" for k in _preranking_keys()])


def _get(cfg: RunConfig, key: str):
    section, name = key.split(".", 1)
    return getattr(getattr(cfg, section), name)


def with_architecture(cfg: RunConfig, saved: RunConfig) -> RunConfig:
    """A copy of ``cfg`` whose architecture (see the module docstring) is ``saved``'s."""
    out = copy.deepcopy(cfg)
    out.model = copy.deepcopy(saved.model)
    for key in _preranking_keys():
        setattr(out.preranking, key, copy.deepcopy(getattr(saved.preranking, key)))
    return out


def with_run_architecture(cfg: RunConfig) -> RunConfig:
    """``cfg`` with the architecture of the run in ``cfg.train.model_dir`` (``cfg`` itself when the run saved no
    config)."""
    saved = saved_run_config(cfg.train.model_dir)
    return cfg if saved is None else with_architecture(cfg, saved)


def conflicts(cfg: RunConfig, saved: RunConfig) -> List[Tuple[str, object, object]]:
    """``(key, saved value, value in cfg)`` for every architecture key where ``cfg`` differs from ``saved``."""
    return [(k, _get(saved, k), _get(cfg, k)) for k in architecture_keys(cfg) if _get(saved, k) != _get(cfg, k)]


def load_for_run(path: Optional[str], overrides: Sequence[str], model_dir: str) -> RunConfig:
    """The config of a command that loads the finished run in ``model_dir``: the defaults with the run's saved
    architecture, then the YAML file ``path`` and the ``section.key=value`` ``overrides``.

    Raises:
      ConfigError: the file or an override sets an architecture key to another value than the run's (one line
        naming the key, the run's value and the value received), or any config error of :func:`load_config`.
    """
    saved = saved_run_config(model_dir)
    if saved is None:
        return load_config(path, overrides)
    cfg = load_config(path, overrides, base=with_architecture(RunConfig(), saved))
    found = conflicts(cfg, saved)
    if found:
        key, kept, given = found[0]
        raise ConfigError(f"`{key}` contradicts the architecture of the trained run in {model_dir} ({key}={kept!r} "
                          f"in {run_config_path(model_dir)}); drop the setting, the run's architecture is used. "
                          f"Received: {key}={given!r}")
    return cfg
