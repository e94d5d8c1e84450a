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

from tfrec.config_taobao import DinConfig, TaobaoConfig, TaobaoSimConfig


class ConfigError(ValueError):
    """A configuration problem, reported as one line that names the key and the value received."""


# ----------------------------------------------------------------------------------------------- sections


@dataclasses.dataclass
class FunnelConfig:
    """The click -> conversion funnel simulator (``tfrec.simulation.funnel``), in the AliExpress CSV layout.

    Attributes:
      users / items: population sizes (each row is one exposure of an item to a user).
      click_rate: target mean true click propensity of an exposure (before noisy clicks).
      conversion_rate: target mean of the true conversion propensity of a genuine click, over exposures.
      noisy_click_share: share of all clicks that are noise (accidental or bot clicks that never convert).
      signal: scale of the user x item affinity in the true logits (0: labels independent of the features).
    """

    users: int = 2000
    items: int = 500
    click_rate: float = 0.1
    conversion_rate: float = 0.15
    noisy_click_share: float = 0.3
    signal: float = 1.5

    def validate(self) -> None:
        _check(self.users > 0, "simulation.funnel.users", self.users, "must be > 0")
        _check(self.items > 0, "simulation.funnel.items", self.items, "must be > 0")
        _check(0.0 < self.click_rate < 1.0, "simulation.funnel.click_rate", self.click_rate, "must be in (0, 1)")
        _check(0.0 < self.conversion_rate < 1.0, "simulation.funnel.conversion_rate", self.conversion_rate,
               "must be in (0, 1)")
        _check(0.0 <= self.noisy_click_share < 1.0, "simulation.funnel.noisy_click_share",
               self.noisy_click_share, "must be in [0, 1)")
        _check(self.click_rate / (1.0 - self.noisy_click_share) < 1.0, "simulation.funnel.noisy_click_share",
               self.noisy_click_share, "with click_rate gives a total click rate >= 1")
        _check(self.signal >= 0, "simulation.funnel.signal", self.signal, "must be >= 0")


@dataclasses.dataclass
class SimulationConfig:
    """Criteo-shaped click-log simulator (``tfrec.simulation.criteo``), or the funnel (``kind: funnel``).

    Attributes:
      rows: number of rows to write.
      positive_rate: target base positive (click) rate; Criteo x1 has 25.6%.
      seed: random seed; the output is a deterministic function of (all fields).
      vocab_scale: multiplies the per-field vocabulary sizes (1.0 = the simulator's defaults).
      interaction_strength: scale of the second-order terms of the true logit (0 = a purely additive logit).
      output: path of the train.txt to write (the sidecar of true probabilities goes beside it).
      kind: ``criteo`` (click logs) or ``funnel`` (click -> conversion, AliExpress CSV layout; see ``funnel``).
      funnel: the funnel simulator's settings (``kind: funnel``; it uses ``rows``, ``seed`` and ``output`` too).
    """

    rows: int = 200_000
    positive_rate: float = 0.256
    seed: int = 2020
    vocab_scale: float = 1.0
    interaction_strength: float = 1.0
    output: str = ""
    kind: str = "criteo"
    funnel: FunnelConfig = dataclasses.field(default_factory=FunnelConfig)

    def validate(self) -> None:
        _check(self.kind in ("criteo", "funnel"), "simulation.kind", self.kind, "must be criteo or funnel")
        self.funnel.validate()
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
      input_format: ``auto`` (sniff each file), ``kaggle`` (TSV) or ``x1`` (criteo_x1 CSV with header); the
        multi-task formats ``aliexpress`` and ``aliccp`` (CSV with header) run ``pipelines.multitask``.
      output: output directory of the prepared dataset.
      beta_pos: weight of positive samples (KDD 2024 Eq. 15); 1.0 keeps the data as it is.
      min_count: categorical values seen fewer times on the train split map to the OOV index.
      split_ratios: train, valid, test shares (hash split).
      split_salt: salt of the split hash; change it to draw another split.
      numeric_transform: ``log_minmax`` (default), ``minmax`` or ``none``; see ``tfrec.transforms``.
      num_shards: output shards per split (0: one per 256 MiB of input, at least one).
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
        _check(self.input_format in ("auto", "kaggle", "x1", "aliexpress", "aliccp"), "prepare.input_format",
               self.input_format, "must be one of auto, kaggle, x1, aliexpress, aliccp")
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
      batch_size: global training batch size (split evenly over replicas), in the dataset's own unit: rows of
        point-wise data, requests (lists) of list-wise data. ``null`` (the default) is the dataset family's default
        (``tfrec.families.Family.batch_defaults``): 4096 rows, or 64 requests.
      eval_batch_size: global evaluation batch size, in the same unit; ``null``: 16384 rows, or 64 requests.
      shuffle_buffer: examples in the shuffle buffer (0 disables shuffling).
      cycle_length: shards read in parallel by the interleave.
      beta_pos: when set, the reader weights positives by it and negatives by 1 (KDD 2024 Eq. 15) in training and
        evaluation, instead of the ``weight`` written at prepare time (one prepared dataset, many sparsities).
      negative_keep_ratio: training reads each negative with this probability (seeded by ``train.seed``; 1.0
        reads all). Validation and evaluation read every row.
    """

    dir: str = ""
    batch_size: Optional[int] = None
    eval_batch_size: Optional[int] = None
    shuffle_buffer: int = 100_000
    cycle_length: int = 4
    beta_pos: Optional[float] = None
    negative_keep_ratio: float = 1.0

    def validate(self) -> None:
        _check(self.batch_size is None or self.batch_size > 0, "data.batch_size", self.batch_size,
               "must be > 0 (or null for the dataset family's default)")
        _check(self.eval_batch_size is None or self.eval_batch_size > 0, "data.eval_batch_size",
               self.eval_batch_size, "must be > 0 (or null for the dataset family's default)")
        _check(self.shuffle_buffer >= 0, "data.shuffle_buffer", self.shuffle_buffer, "must be >= 0")
        _check(self.cycle_length > 0, "data.cycle_length", self.cycle_length, "must be > 0")
        _check(self.beta_pos is None or 0.0 < self.beta_pos <= 1.0, "data.beta_pos", self.beta_pos,
               "must be in (0, 1] (or null for the prepared weights)")
        _check(0.0 < self.negative_keep_ratio <= 1.0, "data.negative_keep_ratio", self.negative_keep_ratio,
               "must be in (0, 1]")

    def with_batch_defaults(self, batch_size: int, eval_batch_size: int) -> "DataConfig":
        """A copy whose unset (``null``) batch sizes are ``batch_size`` / ``eval_batch_size``: the dataset
        family's defaults (``tfrec.families.Family.batch_defaults``: rows of point-wise data, requests of
        list-wise data, whose every request holds tens to hundreds of items)."""
        return dataclasses.replace(self, batch_size=batch_size if self.batch_size is None else self.batch_size,
                                   eval_batch_size=eval_batch_size if self.eval_batch_size is None
                                   else self.eval_batch_size)


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

    Multi-task models (``name`` one of :data:`MULTITASK_MODELS`; ``tfrec.models.multitask``; they compute their
    own loss, per-task BCE + ``pwiser_lambda`` * PWiseR, and use ``embedding_dim``, ``embedding_l2``,
    ``dropout``, ``batch_norm`` and ``net_l2`` too):
      tasks: output tasks, distinct names of ``ctr``, ``cvr``, ``ctcvr`` (ESMM: always ``[ctr, cvr]``).
      task: the task of ``single_task``.
      tower_units: hidden sizes of each task's tower.
      bottom_units: the shared MLP of ``shared_bottom`` and ``esmm`` (``[]`` for the paper's ESMM).
      num_experts / expert_units: MMoE's experts (``expert_units`` also sizes PLE's experts).
      num_levels / num_shared_experts / num_task_experts: PLE's CGC levels and experts per level.
      pwiser_tasks: tasks whose logit gets the PWiseR terms (empty: BCE only).
      pwiser_lambda / pwiser_m1 / pwiser_m2: PWiseR's weight and margins (conversions over click-only samples
        by ``m1``, over no-click samples by ``m2``).
      pwiser_space: ``probability`` or ``logit`` (the score the hinge compares).
      pwiser_pairing: ``replica`` (pairs within each replica's slice) or ``global`` (all-gathered: the global
        batch's pairs; 2 replicas equal 1 device).
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
    tasks: List[str] = dataclasses.field(default_factory=lambda: ["ctr", "cvr"])
    task: str = "ctr"
    tower_units: List[int] = dataclasses.field(default_factory=lambda: [64])
    bottom_units: List[int] = dataclasses.field(default_factory=lambda: [128])
    num_experts: int = 4
    expert_units: List[int] = dataclasses.field(default_factory=lambda: [64])
    num_levels: int = 2
    num_shared_experts: int = 2
    num_task_experts: int = 2
    pwiser_tasks: List[str] = dataclasses.field(default_factory=list)
    pwiser_lambda: float = 0.1
    pwiser_m1: float = 0.1
    pwiser_m2: float = 0.2
    pwiser_space: str = "probability"
    pwiser_pairing: str = "replica"

    @property
    def multitask(self) -> bool:
        """True for the multi-task models (labels ``[batch, 2]``, their own loss)."""
        return self.name in MULTITASK_MODELS

    def output_tasks(self) -> List[str]:
        """The tasks the configured multi-task model outputs."""
        if self.name == "esmm":
            return ["ctr", "cvr", "ctcvr"]
        return [self.task] if self.name == "single_task" else list(self.tasks)

    def _validate_multitask(self) -> None:
        tasks = ("ctr", "cvr", "ctcvr")
        _check(bool(self.tasks) and all(t in tasks for t in self.tasks) and len(set(self.tasks)) == len(self.tasks),
               "model.tasks", self.tasks, "must be distinct names of ctr, cvr, ctcvr")
        _check(self.name != "esmm" or self.tasks == ["ctr", "cvr"], "model.tasks", self.tasks,
               "must be [ctr, cvr] for esmm (its ctcvr output is ctr * cvr)")
        _check(self.task in tasks, "model.task", self.task, "must be one of ctr, cvr, ctcvr")
        for key in ("tower_units", "bottom_units", "expert_units"):
            _check(all(u > 0 for u in getattr(self, key)), f"model.{key}", getattr(self, key),
                   "must be positive sizes")
        _check(self.num_experts >= 1, "model.num_experts", self.num_experts, "must be >= 1")
        _check(self.num_levels >= 1, "model.num_levels", self.num_levels, "must be >= 1")
        _check(self.num_shared_experts >= 0, "model.num_shared_experts", self.num_shared_experts, "must be >= 0")
        _check(self.num_task_experts >= 0, "model.num_task_experts", self.num_task_experts, "must be >= 0")
        _check(self.num_shared_experts + self.num_task_experts >= 1, "model.num_task_experts",
               self.num_task_experts, "PLE needs at least one expert per gate (shared + task experts >= 1)")
        _check(len(set(self.pwiser_tasks)) == len(self.pwiser_tasks)
               and all(t in self.output_tasks() for t in self.pwiser_tasks), "model.pwiser_tasks",
               self.pwiser_tasks, f"must be distinct outputs of {self.name} {self.output_tasks()}")
        _check(self.pwiser_lambda >= 0, "model.pwiser_lambda", self.pwiser_lambda, "must be >= 0")
        _check(self.pwiser_m1 >= 0, "model.pwiser_m1", self.pwiser_m1, "must be >= 0")
        _check(self.pwiser_m2 >= 0, "model.pwiser_m2", self.pwiser_m2, "must be >= 0")
        _check(self.pwiser_space in ("probability", "logit"), "model.pwiser_space", self.pwiser_space,
               "must be probability or logit")
        _check(self.pwiser_pairing in ("replica", "global"), "model.pwiser_pairing", self.pwiser_pairing,
               "must be replica or global")

    def validate(self) -> None:
        if self.multitask:
            self._validate_multitask()
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
      validation_steps: validation batches per epoch (0: the whole valid split; more than the split has reads
        the whole split).
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
    validation_steps: int = 0
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
        _check(self.validation_steps >= 0, "train.validation_steps", self.validation_steps, "must be >= 0")
        _check(self.learning_rate > 0, "train.learning_rate", self.learning_rate, "must be > 0")
        _check(self.clip_norm >= 0, "train.clip_norm", self.clip_norm, "must be >= 0")
        _check(0 < self.plateau_factor < 1, "train.plateau_factor", self.plateau_factor, "must be in (0, 1)")
        _check(self.plateau_patience >= 0, "train.plateau_patience", self.plateau_patience, "must be >= 0")
        _check(self.early_stop_patience >= 0, "train.early_stop_patience", self.early_stop_patience,
               "must be >= 0")
        _check(self.replicas >= 1, "train.replicas", self.replicas, "must be >= 1")
        _check(self.save_every_steps >= 0, "train.save_every_steps", self.save_every_steps, "must be >= 0")
        _check(self.verbose in (0, 1, 2), "train.verbose", self.verbose, "must be 0, 1 or 2")
        _check(self.monitor in MONITORS, "train.monitor", self.monitor, f"must be one of {', '.join(MONITORS)}")
        _check(self.log_every_seconds >= 0, "train.log_every_seconds", self.log_every_seconds, "must be >= 0")


@dataclasses.dataclass
class CascadeConfig:
    """Recommendation-cascade simulator (``tfrec.simulation.cascade``; HCCP's retrieval -> exposure funnel).

    Attributes:
      requests: number of requests (log records) to write.
      users / items / categories: sizes of the simulated world.
      scenarios: number of scenarios (>= 2, so in-scenario and all-scenario positives differ).
      days: requests are spread evenly over this many days.
      retrieved: ``N^p``, candidates retrieved per request (pre-ranking input).
      ranked: ``N^r``, candidates delivered by pre-ranking to ranking.
      exposed_min / exposed_max: impressions per request, uniform in this range (re-ranking output).
      popularity_exponent: Zipf exponent of item popularity (long tail).
      ranking_noise_head / ranking_noise_tail: noise sd of the ranking scorer on the most / least popular items.
      seed: random seed; the output is a deterministic function of all fields.
      output: output directory (``requests.jsonl``, ``items.jsonl``, ``meta.json``).
    """

    requests: int = 4000
    users: int = 1000
    items: int = 5000
    categories: int = 20
    scenarios: int = 2
    days: int = 4
    retrieved: int = 500
    ranked: int = 200
    exposed_min: int = 8
    exposed_max: int = 12
    popularity_exponent: float = 1.1
    ranking_noise_head: float = 0.3
    ranking_noise_tail: float = 1.5
    seed: int = 2024
    output: str = ""

    def validate(self) -> None:
        for key in ("requests", "users", "categories", "days"):
            _check(getattr(self, key) > 0, f"cascade.{key}", getattr(self, key), "must be > 0")
        _check(self.scenarios >= 2, "cascade.scenarios", self.scenarios, "must be >= 2")
        _check(self.exposed_min >= 1, "cascade.exposed_min", self.exposed_min, "must be >= 1")
        _check(self.exposed_max >= self.exposed_min, "cascade.exposed_max", self.exposed_max,
               "must be >= cascade.exposed_min")
        _check(self.ranked >= self.exposed_max, "cascade.ranked", self.ranked, "must be >= cascade.exposed_max")
        _check(self.retrieved > self.ranked, "cascade.retrieved", self.retrieved, "must be > cascade.ranked")
        _check(self.items > self.retrieved, "cascade.items", self.items,
               "must be > cascade.retrieved (the pool needs items that were not retrieved)")
        _check(self.popularity_exponent > 0, "cascade.popularity_exponent", self.popularity_exponent, "must be > 0")
        _check(self.ranking_noise_head >= 0, "cascade.ranking_noise_head", self.ranking_noise_head, "must be >= 0")
        _check(self.ranking_noise_tail >= 0, "cascade.ranking_noise_tail", self.ranking_noise_tail, "must be >= 0")


@dataclasses.dataclass
class HybridSamplesConfig:
    """HCCP hybrid sample construction (``pipelines.hybrid_samples``; HCCP section 3.2).

    Attributes:
      inputs: request log files or globs (JSON lines, see ``tfrec.simulation.cascade``).
      items: item table files or globs (JSON lines).
      output: output directory.
      chunk_boundaries: ranking orders where chunks 2..m start (Eq. 2's ``N_1^r < ... < N_{m-1}^r``); chunk ``j``
        holds ranks ``[N_{j-1}^r, N_j^r)`` with ``N_0^r = 1``, the last chunk all ranks from ``N_{m-1}^r``.
      chunk_rates: ``s_1 .. s_m``, the sample rate of each chunk (one more than ``chunk_boundaries``).
      preranking_samples: N3 items sampled uniformly per request from the retrieved items that did not enter
        ranking.
      pool_samples: N5 items sampled per request from the item table minus the request's retrieved items.
      full_eval_lists: valid and test requests keep every ranking and pre-ranking candidate (rates 1), so that
        hit@K, MAP@K and NDCG@K are measured on the whole candidate set.
      split_by: ``hash`` (of the request id, ``split_ratios`` and ``split_salt``) or ``day``.
      split_ratios: train, valid, test shares of the hash split.
      split_salt: salt of the split hash and of the per-request sampling seeds.
      valid_days / test_days: days of the valid / test splits when ``split_by`` is ``day``.
      seed: seed of the per-request sampling (with the request id).
      num_shards: output shards per split (0 means 1).
      runner: Beam runner name.
      beam_args: extra Beam pipeline arguments.
    """

    inputs: List[str] = dataclasses.field(default_factory=list)
    items: List[str] = dataclasses.field(default_factory=list)
    output: str = ""
    chunk_boundaries: List[int] = dataclasses.field(default_factory=lambda: [10, 20, 40, 70, 110, 150])
    chunk_rates: List[float] = dataclasses.field(
        default_factory=lambda: [0.5, 0.125, 0.1, 0.05, 0.025, 0.01, 0.005])
    preranking_samples: int = 15
    pool_samples: int = 10
    full_eval_lists: bool = True
    split_by: str = "hash"
    split_ratios: List[float] = dataclasses.field(default_factory=lambda: [0.7, 0.2, 0.1])
    split_salt: str = "tfrec"
    valid_days: List[int] = dataclasses.field(default_factory=list)
    test_days: List[int] = dataclasses.field(default_factory=list)
    seed: int = 2024
    num_shards: int = 2
    runner: str = "DirectRunner"
    beam_args: List[str] = dataclasses.field(default_factory=list)

    def validate(self) -> None:
        b, r = self.chunk_boundaries, self.chunk_rates
        _check(all(x >= 2 for x in b) and all(x < y for x, y in zip(b, b[1:])), "hybrid.chunk_boundaries", b,
               "must be strictly increasing ranks >= 2")
        _check(len(r) == len(b) + 1, "hybrid.chunk_rates", r, "must have one rate more than chunk_boundaries")
        _check(all(0.0 <= x <= 1.0 for x in r), "hybrid.chunk_rates", r, "must be rates in [0, 1]")
        _check(self.preranking_samples >= 0, "hybrid.preranking_samples", self.preranking_samples, "must be >= 0")
        _check(self.pool_samples >= 0, "hybrid.pool_samples", self.pool_samples, "must be >= 0")
        _check(self.split_by in ("hash", "day"), "hybrid.split_by", self.split_by, "must be hash or day")
        _check(len(self.split_ratios) == 3 and all(x >= 0 for x in self.split_ratios)
               and abs(sum(self.split_ratios) - 1.0) < 1e-6,
               "hybrid.split_ratios", self.split_ratios, "must be 3 non-negative shares summing to 1")
        _check(not set(self.valid_days) & set(self.test_days), "hybrid.test_days", self.test_days,
               "must not share days with hybrid.valid_days")
        _check(self.num_shards >= 0, "hybrid.num_shards", self.num_shards, "must be >= 0")


@dataclasses.dataclass
class PrerankingConfig:
    """HCCP's Three-Tower pre-ranking model, loss variant and list sizes (``tfrec.models.preranking``).

    Attributes:
      variant: ``hccp`` (full), ``base``, ``base_listnet``, ``base_listmle``, ``wo_up``, ``wo_prc``, ``wo_neg`` or
        ``wo_margin`` (HCCP 4.1.3; the terms each turns on are in ``tfrec.hccp_variants``).
      tasks: the Cxr estimation tasks (labels of the list-wise dataset).
      task_weights: ``lambda_t`` per task (HCCP 4.1.4: click 0.98, purchase 0.2, diversity 0.1).
      global_weight: ``lambda_c`` of the global consistency loss (0.05).
      alpha: local consistency weight (0.05). neg_weight: Eq. 6's ``beta``, the contrastive weight (0.5).
      margin / temperature: Margin InfoNCE's ``m`` (0.9) and ``tau`` (0.1).
      beta_init: Algorithm 1's blend coefficient at the start (9999, the paper's).
      beta_final / beta_final_at: ``beta`` reaches ``beta_final`` (default 0.01) after the fraction
        ``beta_final_at`` (default 0.5) of the run's planned steps (epochs x steps per epoch) and stays there; the
        per-step factor is derived from the run (``tfrec.losses.MarginInfoNCE``). The paper gives no factor.
      beta_scale: a fixed per-step factor instead (Algorithm 1's literal ``beta *= scale``, no floor); exclusive
        with ``beta_final`` / ``beta_final_at``.
      in_batch_rate: N4 sampling rate (0.05).
      hash_bins / embedding_dim / embedding_l2: hashed feature embeddings.
      num_experts / expert_units: the user tower's MMoE (8 experts).
      item_units / cross_units: hidden sizes of the item and cross-feature towers.
      output_dim: user / item embedding size.
      train_list_size / eval_list_size: items per list after padding (train lists ~42 items; valid / test lists
        keep every candidate, ~510: a longer one is an error that names the size needed, never truncated).
      hit_ks / consistency_ks / octile_k: K of the hit rates, of MAP / NDCG and of the octile split.
      copr_weight / copr_reg_weight / copr_chunk_size / copr_relax_units: the ``copr`` variant's pairwise
        consistency and relaxation-regularisation weights, the ranking-order chunk size and the relaxation net's
        hidden sizes (``tfrec.losses.cascade_baselines``).
      rethink_weight / rethink_distill_weight: the ``rethink`` variant's list-wise and distillation weights.
    """

    variant: str = "hccp"
    tasks: List[str] = dataclasses.field(default_factory=lambda: ["click", "purchase", "diversity"])
    task_weights: List[float] = dataclasses.field(default_factory=lambda: [0.98, 0.2, 0.1])
    global_weight: float = 0.05
    alpha: float = 0.05
    neg_weight: float = 0.5
    margin: float = 0.9
    temperature: float = 0.1
    beta_init: float = 9999.0
    beta_scale: Optional[float] = None
    beta_final: Optional[float] = None
    beta_final_at: Optional[float] = None
    in_batch_rate: float = 0.05
    hash_bins: int = 20000
    embedding_dim: int = 16
    embedding_l2: float = 0.0
    num_experts: int = 8
    expert_units: List[int] = dataclasses.field(default_factory=lambda: [64])
    item_units: List[int] = dataclasses.field(default_factory=lambda: [64])
    cross_units: List[int] = dataclasses.field(default_factory=lambda: [32])
    output_dim: int = 32
    train_list_size: int = 48
    eval_list_size: int = 512
    hit_ks: List[int] = dataclasses.field(default_factory=lambda: [10, 50, 100, 200])
    consistency_ks: List[int] = dataclasses.field(default_factory=lambda: [10, 50, 100])
    octile_k: int = 100
    copr_weight: float = 1.0
    copr_reg_weight: float = 0.1
    copr_chunk_size: int = 1
    copr_relax_units: List[int] = dataclasses.field(default_factory=lambda: [16])
    rethink_weight: float = 1.0
    rethink_distill_weight: float = 1.0

    def validate(self) -> None:
        from tfrec.hccp_variants import VARIANTS  # pure Python, no TensorFlow

        _check(self.variant in VARIANTS, "preranking.variant", self.variant, f"must be one of {list(VARIANTS)}")
        _check(len(self.tasks) > 0 and len(set(self.tasks)) == len(self.tasks) and "global" not in self.tasks,
               "preranking.tasks", self.tasks, "must be distinct task names other than 'global'")
        _check(len(self.task_weights) == len(self.tasks) and all(w >= 0 for w in self.task_weights),
               "preranking.task_weights", self.task_weights, "must be one weight >= 0 per task")
        for key in ("global_weight", "alpha", "neg_weight", "margin", "beta_init", "embedding_l2", "copr_weight",
                    "copr_reg_weight", "rethink_weight", "rethink_distill_weight"):
            _check(getattr(self, key) >= 0, f"preranking.{key}", getattr(self, key), "must be >= 0")
        _check(self.temperature > 0, "preranking.temperature", self.temperature, "must be > 0")
        _check(self.beta_scale is None or 0 < self.beta_scale <= 1, "preranking.beta_scale", self.beta_scale,
               "must be in (0, 1]")
        _check(self.beta_scale is None or (self.beta_final is None and self.beta_final_at is None),
               "preranking.beta_scale", self.beta_scale, "is a fixed schedule: leave preranking.beta_final and "
               "preranking.beta_final_at unset with it (they derive the factor from the run)")
        _check(self.beta_final is None or 0 < self.beta_final < float("inf"), "preranking.beta_final",
               self.beta_final, "must be > 0")
        _check(self.beta_final_at is None or 0 < self.beta_final_at <= 1, "preranking.beta_final_at",
               self.beta_final_at, "must be in (0, 1] (a fraction of the planned training steps)")
        _check(0 <= self.in_batch_rate <= 1, "preranking.in_batch_rate", self.in_batch_rate, "must be in [0, 1]")
        for key in ("hash_bins", "embedding_dim", "num_experts", "output_dim", "train_list_size", "eval_list_size",
                    "octile_k"):
            _check(getattr(self, key) > 0, f"preranking.{key}", getattr(self, key), "must be > 0")
        _check(self.copr_chunk_size > 0, "preranking.copr_chunk_size", self.copr_chunk_size, "must be > 0")
        for key in ("hit_ks", "consistency_ks", "expert_units", "copr_relax_units"):
            _check(len(getattr(self, key)) > 0 and all(k > 0 for k in getattr(self, key)), f"preranking.{key}",
                   getattr(self, key), "must be a non-empty list of values > 0")

    def model_kwargs(self) -> Dict[str, Any]:
        """The :class:`tfrec.models.preranking.ThreeTower` arguments of this section, but for the ``beta`` schedule
        (``beta_scale``, ``beta_final``), which the trainer derives from the run (``tfrec.train_preranking``)."""
        keys = ("variant", "tasks", "task_weights", "global_weight", "alpha", "neg_weight", "margin", "temperature",
                "beta_init", "in_batch_rate", "hash_bins", "embedding_dim", "embedding_l2",
                "num_experts", "expert_units", "item_units", "cross_units", "output_dim", "copr_weight",
                "copr_reg_weight", "copr_chunk_size", "copr_relax_units", "rethink_weight", "rethink_distill_weight")
        return {k: getattr(self, k) for k in keys}


@dataclasses.dataclass
class RunConfig:
    """Everything one tfrec command needs; each command reads the sections it uses."""

    simulation: SimulationConfig = dataclasses.field(default_factory=SimulationConfig)
    prepare: PrepareConfig = dataclasses.field(default_factory=PrepareConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    cascade: CascadeConfig = dataclasses.field(default_factory=CascadeConfig)
    hybrid: HybridSamplesConfig = dataclasses.field(default_factory=HybridSamplesConfig)
    preranking: PrerankingConfig = dataclasses.field(default_factory=PrerankingConfig)
    taobao_sim: TaobaoSimConfig = dataclasses.field(default_factory=TaobaoSimConfig)
    taobao: TaobaoConfig = dataclasses.field(default_factory=TaobaoConfig)
    din: DinConfig = dataclasses.field(default_factory=DinConfig)

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            getattr(self, f.name).validate()
        # JRC's loss reads the two logits only the JRC head produces.
        _check(self.loss.name != "jrc" or self.model.head == "jrc", "model.head", self.model.head,
               "must be jrc when loss.name is jrc (the JRC loss reads the two logits of the JRC head)")
        # Multi-task models compute their own loss (per-task BCE + model.pwiser_*) and report per-task AUCs.
        _check(not self.model.multitask or self.loss.name == "weighted_bce", "loss.name", self.loss.name,
               "must stay weighted_bce for a multi-task model (its loss is per-task BCE + model.pwiser_lambda * "
               "PWiseR; set model.pwiser_tasks)")
        task_monitor = self.train.monitor[len("val_"):-len("_auc")] if self.train.monitor in MONITORS[2:] else None
        _check(task_monitor is None or (self.model.multitask and task_monitor in self.model.output_tasks()),
               "train.monitor", self.train.monitor, "must name an output task of a multi-task model")

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def with_batch_defaults(self, batch_size: int, eval_batch_size: int) -> "RunConfig":
        """A copy with the ``data`` section's unset batch sizes set (:meth:`DataConfig.with_batch_defaults`); every
        training and evaluation entry reads its batch sizes from the copy its family makes
        (``tfrec.families.Family.resolve``)."""
        return dataclasses.replace(self, data=self.data.with_batch_defaults(batch_size, eval_batch_size))


#: The multi-task model names (``tfrec.models.multitask``).
MULTITASK_MODELS = ("shared_bottom", "mmoe", "ple", "esmm", "single_task")
#: Validation metrics ``train.monitor`` may name (``val_<task>_auc``: multi-task models; for them
#: ``val_weighted_auc`` reads as ``val_auc``, the first task's AUC in its space).
MONITORS = ("val_auc", "val_weighted_auc", "val_ctr_auc", "val_cvr_auc", "val_ctcvr_auc")


# ----------------------------------------------------------------------------------------------- loading


def check(ok: bool, key: str, value: Any, message: str) -> None:
    """Raises ``ConfigError("`key` message. Received: key=value")`` unless ``ok`` (the one-line config error)."""
    if not ok:
        raise ConfigError(f"`{key}` {message}. Received: {key}={value!r}")


_DEPRECATED_SEEN: set = set()


def deprecated(key: str, value: Any, replacement: str) -> None:
    """Prints the one-line deprecation message of an older config key or value (once per process and key):
    it still works for this release; ``replacement`` says what to write instead."""
    import sys

    if (key, replacement) in _DEPRECATED_SEEN:
        return
    _DEPRECATED_SEEN.add((key, replacement))
    print(f"tfrec: deprecated config: {key}={value!r} is now {replacement} (the old form is read for one more "
          "release)", file=sys.stderr)


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


def apply_values(section: Any, values: Dict[str, Any], prefix: str) -> None:
    """Sets a config dataclass's fields from a (nested) mapping, type-checked; ``prefix`` names it in errors.

    Raises:
      ConfigError: an unknown key or a value of the wrong type.
    """
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
                base: Optional[RunConfig] = None, validate: bool = True) -> RunConfig:
    """Builds a validated :class:`RunConfig`.

    Args:
      path: a YAML file (sections as in :class:`RunConfig`), or None for the defaults.
      overrides: ``section.key=value`` strings applied after the file, in order.
      base: start from this config instead of the defaults.
      validate: run the sections' range checks (False: keys and types only, for reading one value before the
        config is complete).

    Returns:
      The validated config.

    Raises:
      ConfigError: a missing file, a YAML error, an unknown key, a wrong type or an out-of-range value;
        the message is one line naming the key (or the file).
    """
    return apply_config(base if base is not None else RunConfig(), path, overrides, validate=validate)


def apply_config(cfg: Any, path: Optional[str], overrides: Sequence[str] = (), validate: bool = True) -> Any:
    """Applies a YAML file of sections, then ``section.key=value`` overrides, to a config of sections; validates it.

    Args:
      cfg: a dataclass of section dataclasses (:class:`RunConfig`, ``pipelines.tfx.config.PipelineConfig``), with
        a ``validate()`` method; changed in place.
      path: a YAML file (a mapping of sections), or None for none.
      overrides: ``section.key=value`` strings applied after the file, in order.
      validate: run ``cfg.validate()`` at the end.

    Returns:
      ``cfg``, validated (with ``validate``).

    Raises:
      ConfigError: a missing file, a YAML error, an unknown key, a wrong type or an out-of-range value; the
        message is one line naming the key (or the file).
    """
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
    if validate:
        cfg.validate()
    return cfg


def dump_config(cfg: RunConfig, path: str) -> None:
    """Writes ``cfg`` as YAML that :func:`load_config` reads back to an equal config."""
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(cfg.to_dict(), f, sort_keys=False)


# Internal short names (the module's validators call these).
_check = check
_apply = apply_values
