"""The whole config of a command (:class:`RunConfig`) and how it is read: YAML files, flags, ``--set`` overrides.

A config is built from mappings merged in order (the defaults or a ``base`` config, a YAML file, the command's
flags, the ``section.key=value`` overrides), rewritten from the previous release's layout where it has old keys
(:mod:`tfrec.config.legacy`), then validated by pydantic into the section dataclasses (:mod:`tfrec.config.base`).
Mappings merge key by key (``--set model.loss.params.alpha=0.7`` changes one argument of a file's loss; an empty
mapping, ``model.loss.params={}``, clears one). Setting ``model.name`` to another model keeps the settings of the
previous model that the new one has and that differ from the previous model's defaults (a preset's
``embedding_dim`` stays when a protocol switches the architecture); keys set before any name are kept when the
named model has them, the others are dropped (``--set model.tower_units=[8] --set model.bottom_units=[8] --set
model.name=mmoe``: MMoE has no bottom; the same flags read the same way on a run that saved ``name: mmoe``).
"""

from __future__ import annotations

import copy
import dataclasses
import os
from typing import Any, Dict, Mapping, Optional, Sequence

import yaml

from tfrec.config.base import CONFIG, ConfigError, Section, check, note, validate_as
from tfrec.config.legacy import LEGACY_MODEL_KEYS, upgrade
from tfrec.config.models import MODELS, DCNv2Config, LossConfig, ModelConfig, model_name
from tfrec.config.sections import (CascadeConfig, DataConfig, HybridSamplesConfig, PrepareConfig, PrerankingConfig,
                                   SimulationConfig, TrainConfig)
from tfrec.config.taobao import DinConfig, TaobaoConfig, TaobaoSimConfig

#: Mapping-valued keys that a new value replaces instead of merging into.
REPLACE_KEYS = frozenset({"custom_config"})


@dataclasses.dataclass
class RunConfig(Section):
    """Everything one tfrec command needs; each command reads the sections it uses.

    ``model`` is the model's own section (architecture and loss, chosen by ``model.name``:
    :mod:`tfrec.config.models`); ``prepare`` / ``hybrid`` and ``simulation`` / ``cascade`` make the data of the
    row families and of the ``preranking`` family; ``preranking`` holds the list sizes and report K values of the
    ``preranking`` family; ``taobao_sim``, ``taobao`` and ``din`` make the Taobao lists of that family
    (:mod:`tfrec.config.taobao`).
    """

    __pydantic_config__ = CONFIG

    simulation: SimulationConfig = dataclasses.field(default_factory=SimulationConfig)
    prepare: PrepareConfig = dataclasses.field(default_factory=PrepareConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=DCNv2Config)  # type: ignore[valid-type]
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    cascade: CascadeConfig = dataclasses.field(default_factory=CascadeConfig)
    hybrid: HybridSamplesConfig = dataclasses.field(default_factory=HybridSamplesConfig)
    preranking: PrerankingConfig = dataclasses.field(default_factory=PrerankingConfig)
    taobao_sim: TaobaoSimConfig = dataclasses.field(default_factory=TaobaoSimConfig)
    taobao: TaobaoConfig = dataclasses.field(default_factory=TaobaoConfig)
    din: DinConfig = dataclasses.field(default_factory=DinConfig)

    def rules(self) -> None:
        monitors = self.model.monitors()
        check(self.train.monitor in monitors, "train.monitor", self.train.monitor,
              f"must be one of {', '.join(monitors)} for model {self.model.name!r} (val_<task>_auc names an output "
              "task of a multi-task model)")

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def loss(self) -> LossConfig:
        """Deprecated: the previous release's ``loss`` section, now ``model.loss`` of DCN V2 (the default
        ``weighted_bce`` for a model that computes its own loss)."""
        note("deprecated config: RunConfig.loss is now RunConfig.model.loss (the old attribute is read for one more "
             "release)")
        return self.model.loss if isinstance(getattr(self.model, "loss", None), LossConfig) else LossConfig()

    def with_batch_defaults(self, batch_size: int, eval_batch_size: int) -> "RunConfig":
        """A copy with the ``data`` section's unset batch sizes set (:meth:`DataConfig.with_batch_defaults`); every
        training and evaluation entry reads its batch sizes from the copy its family makes
        (``tfrec.families.Family.resolve``)."""
        return dataclasses.replace(self, data=self.data.with_batch_defaults(batch_size, eval_batch_size))


# ----------------------------------------------------------------------------------------------- merging


def _carry(old: Mapping[str, Any], old_cls, new_cls) -> Dict[str, Any]:
    """The settings of ``old`` (a section of ``old_cls``) that ``new_cls`` has and that differ from ``old_cls``'s
    defaults or that ``old_cls`` does not have (nested sections likewise)."""
    defaults = dataclasses.asdict(old_cls())
    new_fields = {f.name: f for f in dataclasses.fields(new_cls)}
    old_fields = {f.name: f for f in dataclasses.fields(old_cls)}
    out: Dict[str, Any] = {}
    for key, value in old.items():
        if key in LEGACY_MODEL_KEYS:
            out[key] = value
        elif key == "name" or key not in new_fields:
            continue
        elif key not in old_fields:  # set for the new model before its name (``--set model.tower_units=[8]``)
            out[key] = copy.deepcopy(value)
        elif isinstance(value, Mapping):
            old_sub, new_sub = type(getattr(old_cls(), key)), type(getattr(new_cls(), key))
            if dataclasses.is_dataclass(old_sub) and dataclasses.is_dataclass(new_sub):
                sub = _carry(value, old_sub, new_sub)
                if sub:
                    out[key] = sub
        elif value != defaults.get(key):
            out[key] = copy.deepcopy(value)
    return out


def merge(into: Dict[str, Any], new: Mapping[str, Any], top: bool = True) -> Dict[str, Any]:
    """Merges the mapping ``new`` into ``into`` (module docstring); returns ``into``."""
    for key, value in new.items():
        current = into.get(key)
        if top and key == "model" and isinstance(value, Mapping) and isinstance(current, dict):
            old, name = current.get("name"), value.get("name")
            if old and name and old != name and old in MODELS and name in MODELS:
                into["model"] = current = _carry(current, MODELS[old], MODELS[name])
            elif name in MODELS:  # keys set before the name: those the named model has stay
                fields = {f.name for f in dataclasses.fields(MODELS[name])} | LEGACY_MODEL_KEYS
                into["model"] = current = {k: v for k, v in current.items() if k in fields}
            merge(current, value, top=False)
        elif isinstance(value, Mapping) and value and isinstance(current, dict) and key not in REPLACE_KEYS:
            merge(current, value, top=False)
        else:
            into[key] = copy.deepcopy(dict(value) if isinstance(value, Mapping) else value)
    return into


def parse_override(text: str) -> Dict[str, Any]:
    """Turns ``a.b=value`` into ``{"a": {"b": value}}`` with ``value`` read as YAML."""
    if "=" not in text:
        raise ConfigError(f"an override must look like section.key=value. Received: {text!r}")
    path, raw = text.split("=", 1)
    keys = [k for k in path.strip().split(".") if k]
    if not keys:
        raise ConfigError(f"an override must name a key. Received: {text!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as e:
        raise ConfigError(f"cannot read the value of override {path}: {str(e).splitlines()[0]}") from None
    out: Dict[str, Any] = {}
    node = out
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    node[keys[-1]] = value
    return out


def read_yaml(path: str) -> Dict[str, Any]:
    """A YAML file of sections.

    Raises:
      ConfigError: a missing file, a YAML error, or a file that is not a mapping.
    """
    if not os.path.exists(path):
        raise ConfigError(f"config file not found: {path}")
    try:
        with open(path, "r", encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"cannot read config {path}: {' '.join(str(e).split())}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must be a mapping of sections, got {type(data).__name__}")
    return data


def load_sections(cls, path: Optional[str] = None, overrides: Sequence[str] = (), base: Any = None,
                  values: Optional[Mapping[str, Any]] = None, validate: bool = True):
    """Builds a config of sections ``cls`` (:class:`RunConfig`, ``pipelines.tfx.config.PipelineConfig``).

    Args:
      cls: the config class.
      path: a YAML file (a mapping of sections), or None.
      overrides: ``section.key=value`` strings applied after the file and ``values``, in order.
      base: start from this config instead of the defaults.
      values: a mapping of sections applied after the file (a command's flags, a Trainer's ``custom_config``).
      validate: run the rules that read several fields (False: types, ranges and keys only, for reading values
        of a config that is not complete yet; the model section is left at its default when it does not validate).

    Raises:
      ConfigError: a missing file, a YAML error, an unknown key, a wrong type or an out-of-range value; the
        message is one line naming the key (or the file).
    """
    raw: Dict[str, Any] = dataclasses.asdict(base) if base is not None else {}
    sources = []
    if path:
        sources.append((read_yaml(path), path))
    if values:
        sources.append((values, "the settings"))
    sources += [(parse_override(text), "--set") for text in overrides]
    for data, where in sources:
        merge(raw, upgrade(data, where, MODELS, context=raw))
    if not validate:
        from tfrec.config.base import adapter

        # Without the model section too: a model key may be a finished run's model's, which the caller's
        # defaults do not name yet (``tfrec evaluate --set model.num_experts=4`` reads train.model_dir first).
        for partial in (raw, {k: v for k, v in raw.items() if k != "model"}):
            try:
                return adapter(cls).validate_python(partial)
            except Exception:  # noqa: BLE001 - reported by the full validation below
                pass
    return validate_as(cls, raw)


def load_config(path: Optional[str] = None, overrides: Sequence[str] = (), base: Optional[RunConfig] = None,
                validate: bool = True, values: Optional[Mapping[str, Any]] = None) -> RunConfig:
    """Builds a validated :class:`RunConfig` (:func:`load_sections`).

    Example:
      >>> cfg = load_config(None, ["train.learning_rate=0.01", "model.dnn_hidden_units=[64, 32]"])
      >>> cfg.train.learning_rate, cfg.model.dnn_hidden_units
      (0.01, [64, 32])
    """
    return load_sections(RunConfig, path, overrides, base=base, values=values, validate=validate)


def dump_config(cfg: Any, path: str) -> None:
    """Writes ``cfg`` as YAML that :func:`load_config` reads back to an equal config."""
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(dataclasses.asdict(cfg), f, sort_keys=False)


def model_of(cfg: Any) -> str:
    """The model name of a config or a mapping."""
    return model_name(cfg.model if not isinstance(cfg, Mapping) else cfg.get("model", {}))


# ------------------------------------------------------------------------------- previous release's helpers


def _assign(target: Any, source: Any) -> Any:
    for f in dataclasses.fields(target):
        setattr(target, f.name, getattr(source, f.name))
    return target


def apply_config(cfg: Any, path: Optional[str], overrides: Sequence[str] = (), validate: bool = True) -> Any:
    """Deprecated (use :func:`load_sections`): applies a YAML file, then ``section.key=value`` overrides, to the
    config of sections ``cfg`` in place and returns it.

    Raises:
      ConfigError: as :func:`load_sections`.
    """
    return _assign(cfg, load_sections(type(cfg), path, overrides, base=cfg, validate=validate))


def apply_values(section: Any, values: Mapping[str, Any], prefix: str = "") -> None:
    """Deprecated (use :func:`load_sections` with ``values``): sets the fields of the config dataclass
    ``section`` from a (nested) mapping, in place; ``prefix`` (``"data."``) names it in errors.

    Raises:
      ConfigError: an unknown key or a value of the wrong type or out of range (one line naming the key).
    """
    if not prefix and dataclasses.is_dataclass(section) and any(f.name == "model" for f in dataclasses.fields(section)):
        new = load_sections(type(section), base=section, values=values, validate=False)
    else:
        new = validate_as(type(section), merge(dataclasses.asdict(section), values), prefix.rstrip("."))
    _assign(section, new)
