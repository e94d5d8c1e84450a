"""Typed, validated configuration loaded from YAML and overridden from the command line.

Every tfrec command reads one :class:`RunConfig`: nested dataclasses whose fields carry their types. YAML is read
with ``yaml.safe_load``; every key is checked against the dataclass (an unknown key is an error that names the
key and its section), every value against the field's type, and every section's ``validate`` checks ranges.
``--set section.key=value`` overrides parse ``value`` as a YAML scalar or list and go through the same checks.

Example:
  >>> cfg = load_config(None, ["train.learning_rate=0.01", "model.dnn_hidden_units=[64, 32]"])
  >>> cfg.train.learning_rate, cfg.model.dnn_hidden_units
  (0.01, [64, 32])
"""

from __future__ import annotations

import dataclasses
import os
import typing
from typing import Any, Dict, List, Optional, Sequence

import yaml


class ConfigError(ValueError):
    """A configuration problem, reported as one line that names the key and the value received."""


# ----------------------------------------------------------------------------------------------- sections


@dataclasses.dataclass
class SimulationConfig:
    """Criteo-shaped click-log simulator (``tfrec.simulation.criteo``).

    Attributes:
      rows: number of rows to write.
      positive_rate: target base positive (click) rate; Criteo x1 has 25.6%.
      seed: random seed; the output is a deterministic function of (all fields).
      vocab_scale: multiplies the per-field vocabulary sizes (1.0 = the simulator's defaults).
      interaction_strength: scale of the second-order terms of the true logit (0 = a purely additive logit).
      output: path of the train.txt to write (the sidecar of true probabilities goes beside it).
    """

    rows: int = 200_000
    positive_rate: float = 0.256
    seed: int = 2020
    vocab_scale: float = 1.0
    interaction_strength: float = 1.0
    output: str = ""

    def validate(self) -> None:
        _check(self.rows > 0, "simulation.rows", self.rows, "must be > 0")
        _check(0.0 < self.positive_rate < 1.0, "simulation.positive_rate", self.positive_rate, "must be in (0, 1)")
        _check(self.vocab_scale > 0, "simulation.vocab_scale", self.vocab_scale, "must be > 0")
        _check(self.interaction_strength >= 0, "simulation.interaction_strength", self.interaction_strength,
               "must be >= 0")


@dataclasses.dataclass
class PrepareConfig:
    """The Criteo Beam pipeline (``pipelines.criteo``).

    Attributes:
      inputs: input files or glob patterns, split 7:2:1 by a deterministic hash of the row.
      train / valid / test: separate input files per split (used instead of ``inputs`` when given).
      input_format: ``auto`` (sniff each file), ``kaggle`` (TSV) or ``x1`` (criteo_x1 CSV with header).
      output: output directory of the prepared dataset.
      beta_pos: weight of positive samples (KDD 2024 Eq. 15); 1.0 keeps the data as it is.
      min_count: categorical values seen fewer times on the train split map to the OOV index.
      split_ratios: train, valid, test shares (hash split).
      split_salt: salt of the split hash; change it to draw another split.
      numeric_transform: ``log_minmax`` (default), ``minmax`` or ``none``; see ``tfrec.transforms``.
      num_shards: output shards per split (0 means 1).
      runner: Beam runner name.
      beam_args: extra Beam pipeline arguments, passed through untouched.
    """

    inputs: List[str] = dataclasses.field(default_factory=list)
    train: List[str] = dataclasses.field(default_factory=list)
    valid: List[str] = dataclasses.field(default_factory=list)
    test: List[str] = dataclasses.field(default_factory=list)
    input_format: str = "auto"
    output: str = ""
    beta_pos: float = 1.0
    min_count: int = 10
    split_ratios: List[float] = dataclasses.field(default_factory=lambda: [0.7, 0.2, 0.1])
    split_salt: str = "tfrec"
    numeric_transform: str = "log_minmax"
    num_shards: int = 4
    runner: str = "DirectRunner"
    beam_args: List[str] = dataclasses.field(default_factory=list)

    def validate(self) -> None:
        _check(0.0 < self.beta_pos <= 1.0, "prepare.beta_pos", self.beta_pos, "must be in (0, 1]")
        _check(self.min_count >= 1, "prepare.min_count", self.min_count, "must be >= 1")
        _check(self.input_format in ("auto", "kaggle", "x1"), "prepare.input_format", self.input_format,
               "must be one of auto, kaggle, x1")
        _check(len(self.split_ratios) == 3 and all(r >= 0 for r in self.split_ratios)
               and abs(sum(self.split_ratios) - 1.0) < 1e-6,
               "prepare.split_ratios", self.split_ratios, "must be 3 non-negative shares summing to 1")
        _check(self.numeric_transform in ("log_minmax", "minmax", "none"), "prepare.numeric_transform",
               self.numeric_transform, "must be one of log_minmax, minmax, none")
        _check(self.num_shards >= 0, "prepare.num_shards", self.num_shards, "must be >= 0")
        separate = bool(self.train or self.valid or self.test)
        _check(not (separate and self.inputs), "prepare.inputs", self.inputs,
               "give either inputs (hash split) or train/valid/test files, not both")


@dataclasses.dataclass
class DataConfig:
    """The tf.data reader (``tfrec.data``).

    Attributes:
      dir: prepared dataset directory (TFRecords, schema.json, stats.json, vocabularies).
      batch_size: global training batch size (split evenly over replicas).
      eval_batch_size: global evaluation batch size.
      shuffle_buffer: examples in the shuffle buffer (0 disables shuffling).
      cycle_length: shards read in parallel by the interleave.
      beta_pos: when set, the reader weights positives by it and negatives by 1 (KDD 2024 Eq. 15) in training and
        evaluation, instead of the ``weight`` written at prepare time (one prepared dataset, many sparsities).
      negative_keep_ratio: training reads each negative with this probability (seeded by ``train.seed``; 1.0
        reads all). Validation and evaluation read every row.
    """

    dir: str = ""
    batch_size: int = 4096
    eval_batch_size: int = 16384
    shuffle_buffer: int = 100_000
    cycle_length: int = 4
    beta_pos: Optional[float] = None
    negative_keep_ratio: float = 1.0

    def validate(self) -> None:
        _check(self.batch_size > 0, "data.batch_size", self.batch_size, "must be > 0")
        _check(self.eval_batch_size > 0, "data.eval_batch_size", self.eval_batch_size, "must be > 0")
        _check(self.shuffle_buffer >= 0, "data.shuffle_buffer", self.shuffle_buffer, "must be >= 0")
        _check(self.cycle_length > 0, "data.cycle_length", self.cycle_length, "must be > 0")
        _check(self.beta_pos is None or 0.0 < self.beta_pos <= 1.0, "data.beta_pos", self.beta_pos,
               "must be in (0, 1] (or null for the prepared weights)")
        _check(0.0 < self.negative_keep_ratio <= 1.0, "data.negative_keep_ratio", self.negative_keep_ratio,
               "must be in (0, 1]")


@dataclasses.dataclass
class ModelConfig:
    """DCN V2 (``tfrec.models.ctr``); defaults are the KDD 2024 / BARS Criteo x1 setting.

    Attributes:
      name: registered model name.
      structure: ``parallel`` (cross network beside the DNN) or ``stacked`` (DNN on the cross output).
      num_cross_layers: number of cross layers.
      cross_low_rank: 0 for full-rank cross layers, otherwise the rank of the low-rank (mixture-free) cross.
      dnn_hidden_units: hidden layer sizes of the DNN.
      embedding_dim: embedding size of every field.
      dropout: dropout rate after each hidden layer.
      embedding_l2: L2 coefficient on the embedding tables (Keras convention: coef * sum(w^2)).
      net_l2: L2 coefficient on the dense kernels.
      batch_norm: batch normalisation in the DNN.
      head: ``binary`` (one logit) or ``jrc`` (two logits, non-click and click, as the ``jrc`` loss needs).
    """

    name: str = "dcn_v2"
    structure: str = "parallel"
    num_cross_layers: int = 3
    cross_low_rank: int = 0
    dnn_hidden_units: List[int] = dataclasses.field(default_factory=lambda: [500, 500, 500])
    embedding_dim: int = 10
    dropout: float = 0.1
    embedding_l2: float = 1e-5
    net_l2: float = 0.0
    batch_norm: bool = False
    head: str = "binary"

    def validate(self) -> None:
        _check(self.structure in ("parallel", "stacked"), "model.structure", self.structure,
               "must be parallel or stacked")
        _check(self.head in ("binary", "jrc"), "model.head", self.head, "must be binary or jrc")
        _check(self.num_cross_layers >= 0, "model.num_cross_layers", self.num_cross_layers, "must be >= 0")
        _check(self.cross_low_rank >= 0, "model.cross_low_rank", self.cross_low_rank, "must be >= 0")
        _check(all(u > 0 for u in self.dnn_hidden_units), "model.dnn_hidden_units", self.dnn_hidden_units,
               "must be positive sizes")
        _check(self.num_cross_layers > 0 or self.dnn_hidden_units, "model.num_cross_layers",
               self.num_cross_layers, "the model needs cross layers or DNN layers")
        _check(self.embedding_dim > 0, "model.embedding_dim", self.embedding_dim, "must be > 0")
        _check(0.0 <= self.dropout < 1.0, "model.dropout", self.dropout, "must be in [0, 1)")
        _check(self.embedding_l2 >= 0, "model.embedding_l2", self.embedding_l2, "must be >= 0")
        _check(self.net_l2 >= 0, "model.net_l2", self.net_l2, "must be >= 0")


@dataclasses.dataclass
class LossConfig:
    """The training loss, by registered name (``tfrec.losses``).

    Attributes:
      name: registered loss name (``tfrec.losses.names()`` lists them).
      params: the loss's own arguments; each key is checked against the loss's constructor.
    """

    name: str = "weighted_bce"
    params: Dict[str, Any] = dataclasses.field(default_factory=dict)

    def validate(self) -> None:
        from tfrec import losses  # local: losses imports TensorFlow.

        try:
            losses.check_config(self.name, self.params)
            losses.get(self.name, **self.params)  # the loss checks its values (ranges, choices)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"`loss`: {e}") from None


@dataclasses.dataclass
class TrainConfig:
    """Training driver (``tfrec.train``); defaults are the KDD 2024 / BARS setting.

    Attributes:
      model_dir: where checkpoints, the backup, TensorBoard logs, the best model and metrics go.
      epochs: maximum number of epochs.
      steps_per_epoch: 0 reads each epoch to the end of the train split.
      learning_rate: Adam learning rate.
      clip_norm: global gradient-norm clip (0 disables).
      plateau_factor / plateau_patience: learning rate x factor after this many epochs without val AUC gain.
      early_stop_patience: stop after this many epochs without validation AUC gain.
      replicas: MirroredStrategy replicas; on a CPU host the host is split into this many logical devices.
      seed: random seed of initialisation, dropout and shuffling.
      save_every_steps: BackupAndRestore saves every N steps (0 saves at epoch ends only).
      verbose: Keras progress output (0 silent, 1 progress bar, 2 one line per epoch).
      monitor: validation metric for early stopping, the learning-rate plateau and the best checkpoint (higher is
        better); the weighted AUC equals the AUC when beta_pos = 1.
      log_every_seconds: tfrec's own progress line (step, loss, examples/s) at most this often (0 disables).
      gradient_diagnostics: record the per-batch gradient diagnostics (KDD 2024 Fig. 2, 3, 9; see
        ``tfrec.metrics.gradients``) in ``<model_dir>/gradient_diagnostics.csv`` and as TensorBoard scalars in
        ``<model_dir>/logs/gradients``.
    """

    model_dir: str = ""
    epochs: int = 10
    steps_per_epoch: int = 0
    learning_rate: float = 1e-3
    clip_norm: float = 10.0
    plateau_factor: float = 0.1
    plateau_patience: int = 1
    early_stop_patience: int = 2
    replicas: int = 2
    seed: int = 2020
    save_every_steps: int = 100
    verbose: int = 0
    monitor: str = "val_weighted_auc"
    log_every_seconds: float = 10.0
    gradient_diagnostics: bool = False

    def validate(self) -> None:
        _check(self.epochs > 0, "train.epochs", self.epochs, "must be > 0")
        _check(self.steps_per_epoch >= 0, "train.steps_per_epoch", self.steps_per_epoch, "must be >= 0")
        _check(self.learning_rate > 0, "train.learning_rate", self.learning_rate, "must be > 0")
        _check(self.clip_norm >= 0, "train.clip_norm", self.clip_norm, "must be >= 0")
        _check(0 < self.plateau_factor < 1, "train.plateau_factor", self.plateau_factor, "must be in (0, 1)")
        _check(self.plateau_patience >= 0, "train.plateau_patience", self.plateau_patience, "must be >= 0")
        _check(self.early_stop_patience >= 0, "train.early_stop_patience", self.early_stop_patience,
               "must be >= 0")
        _check(self.replicas >= 1, "train.replicas", self.replicas, "must be >= 1")
        _check(self.save_every_steps >= 0, "train.save_every_steps", self.save_every_steps, "must be >= 0")
        _check(self.verbose in (0, 1, 2), "train.verbose", self.verbose, "must be 0, 1 or 2")
        _check(self.monitor in ("val_auc", "val_weighted_auc"), "train.monitor", self.monitor,
               "must be val_auc or val_weighted_auc")
        _check(self.log_every_seconds >= 0, "train.log_every_seconds", self.log_every_seconds, "must be >= 0")


@dataclasses.dataclass
class RunConfig:
    """Everything one tfrec command needs; each command reads the sections it uses."""

    simulation: SimulationConfig = dataclasses.field(default_factory=SimulationConfig)
    prepare: PrepareConfig = dataclasses.field(default_factory=PrepareConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            getattr(self, f.name).validate()
        # JRC's loss reads the two logits only the JRC head produces.
        _check(self.loss.name != "jrc" or self.model.head == "jrc", "model.head", self.model.head,
               "must be jrc when loss.name is jrc (the JRC loss reads the two logits of the JRC head)")

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------------------------- loading


def _check(ok: bool, key: str, value: Any, message: str) -> None:
    if not ok:
        raise ConfigError(f"`{key}` {message}. Received: {key}={value!r}")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Checks ``value`` against the annotation ``tp`` and returns it (ints widen to floats)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin is typing.Union:
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key)
    if origin in (list, List, Sequence):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"`{key}` must be a list. Received: {key}={value!r}")
        return [_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
    if origin in (dict, Dict):
        if not isinstance(value, dict):
            raise ConfigError(f"`{key}` must be a mapping. Received: {key}={value!r}")
        return {str(k): _coerce(v, args[1], f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"`{key}` must be true or false. Received: {key}={value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"`{key}` must be an integer. Received: {key}={value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"`{key}` must be a number. Received: {key}={value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"`{key}` must be a string. Received: {key}={value!r}")
        return value
    raise ConfigError(f"`{key}` has an unsupported type {tp!r}")


def _apply(section: Any, values: Dict[str, Any], prefix: str) -> None:
    hints = typing.get_type_hints(type(section))
    names = {f.name for f in dataclasses.fields(section)}
    for key, value in values.items():
        path = f"{prefix}{key}"
        if key not in names:
            raise ConfigError(f"unknown config key `{path}`; known keys in this section: {sorted(names)}")
        current = getattr(section, key)
        if isinstance(section, LossConfig) and key == "params" and isinstance(value, dict) and value:
            # Merged, so `--set loss.params.alpha=0.7` changes one argument of the file's loss
            # (`loss.params={}` clears them).
            setattr(section, key, {**current, **value})
            continue
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"`{path}` must be a mapping. Received: {path}={value!r}")
            _apply(current, value, f"{path}.")
        else:
            setattr(section, key, _coerce(value, hints[key], path))


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


def load_config(path: Optional[str] = None, overrides: Sequence[str] = (),
                base: Optional[RunConfig] = None) -> RunConfig:
    """Builds a validated :class:`RunConfig`.

    Args:
      path: a YAML file (sections as in :class:`RunConfig`), or None for the defaults.
      overrides: ``section.key=value`` strings applied after the file, in order.
      base: start from this config instead of the defaults.

    Returns:
      The validated config.

    Raises:
      ConfigError: a missing file, a YAML error, an unknown key, a wrong type or an out-of-range value;
        the message is one line naming the key (or the file).
    """
    cfg = base if base is not None else RunConfig()
    if path:
        if not os.path.exists(path):
            raise ConfigError(f"config file not found: {path}")
        try:
            with open(path, "r", encoding="utf-8") as f:
                data = yaml.safe_load(f) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"cannot read config {path}: {' '.join(str(e).split())}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config {path} must be a mapping of sections, got {type(data).__name__}")
        _apply(cfg, data, "")
    for text in overrides:
        _apply(cfg, parse_override(text), "")
    cfg.validate()
    return cfg


def dump_config(cfg: RunConfig, path: str) -> None:
    """Writes ``cfg`` as YAML that :func:`load_config` reads back to an equal config."""
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(cfg.to_dict(), f, sort_keys=False)
