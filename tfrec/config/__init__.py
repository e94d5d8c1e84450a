"""Typed, validated configuration loaded from YAML and overridden from the command line.

Every tfrec command reads one :class:`RunConfig`: dataclass sections whose fields carry their types and
constraints, validated with pydantic v2 (:mod:`tfrec.config.base`): an unknown key is an error that names the key
and its section, a value of the wrong type or out of range names the key and the value. The ``model`` section is
the model's own (architecture and loss), chosen by ``model.name`` (:mod:`tfrec.config.models`). YAML is read with
``yaml.safe_load``; ``--set section.key=value`` overrides parse ``value`` as a YAML scalar or list and go through the
same checks (:mod:`tfrec.config.run`). Keys of the previous release still work, with a one-line deprecation
message (:mod:`tfrec.config.legacy`).

Example:
  >>> cfg = load_config(None, ["train.learning_rate=0.01", "model.dnn_hidden_units=[64, 32]"])
  >>> cfg.train.learning_rate, cfg.model.dnn_hidden_units
  (0.01, [64, 32])
"""

from tfrec.config.base import ConfigError, Section, check, deprecated, note, validate_as
from tfrec.config.models import (DEFAULT_MODEL, MODELS, MULTITASK_MODELS, DCNv2Config, ESMMConfig, LossConfig,
                                 MMoEConfig, ModelConfig, MultiTaskLossConfig, PLEConfig, SharedBottomConfig,
                                 SingleTaskConfig, ThreeTowerConfig, ThreeTowerLossConfig)
from tfrec.config.run import (RunConfig, apply_config, apply_values, dump_config, load_config, load_sections, merge,
                              parse_override, read_yaml)
from tfrec.config.sections import (MONITORS, CascadeConfig, DataConfig, FunnelConfig, HybridSamplesConfig,
                                   PrepareConfig, PrerankingConfig, SimulationConfig, TrainConfig)
from tfrec.config.taobao import DinConfig, TaobaoConfig, TaobaoSimConfig

__all__ = ["CascadeConfig", "ConfigError", "DCNv2Config", "DEFAULT_MODEL", "DataConfig", "DinConfig", "ESMMConfig",
           "FunnelConfig", "HybridSamplesConfig", "LossConfig", "MMoEConfig", "MODELS", "MONITORS",
           "MULTITASK_MODELS", "ModelConfig", "MultiTaskLossConfig", "PLEConfig", "PrepareConfig", "PrerankingConfig",
           "RunConfig", "Section", "SharedBottomConfig", "SimulationConfig", "SingleTaskConfig", "TaobaoConfig",
           "TaobaoSimConfig", "ThreeTowerConfig", "ThreeTowerLossConfig", "TrainConfig", "apply_config",
           "apply_values", "check", "deprecated", "dump_config", "load_config", "load_sections", "merge", "note",
           "parse_override", "read_yaml", "validate_as"]
