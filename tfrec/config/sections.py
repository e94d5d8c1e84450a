"""The config sections of the data and the driver: simulators, Beam pipelines, reader, training, report sizes.

Each is a dataclass whose fields carry their types and constraints (pydantic metadata, checked when a config is
loaded, :mod:`tfrec.config.base`); ``rules`` holds the checks that read several fields. The model sections (the
architecture and the loss of each model) are in :mod:`tfrec.config.models`.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Iterable, List, Literal, Optional

from pydantic import Field

from tfrec.config.base import CONFIG, Section, check

PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
#: A share or a probability strictly between 0 and 1.
OpenUnit = Annotated[float, Field(gt=0, lt=1)]

#: Validation metrics ``train.monitor`` may name (``val_<task>_auc``: multi-task models; for them
#: ``val_weighted_auc`` reads as ``val_auc``, the first task's AUC in its space).
MONITORS = ("val_auc", "val_weighted_auc", "val_ctr_auc", "val_cvr_auc", "val_ctcvr_auc")


def _split_ratios(key: str, ratios: List[float]) -> None:
    check(len(ratios) == 3 and all(r >= 0 for r in ratios) and abs(sum(ratios) - 1.0) < 1e-6, key, ratios,
          "must be 3 non-negative shares summing to 1")


@dataclasses.dataclass
class FunnelConfig(Section):
    """The click -> conversion funnel simulator (``tfrec.simulation.funnel``), in the AliExpress CSV layout.

    Attributes:
      users / items: population sizes (each row is one exposure of an item to a user).
      click_rate: target mean true click propensity of an exposure (before noisy clicks).
      conversion_rate: target mean of the true conversion propensity of a genuine click, over exposures.
      noisy_click_share: share of all clicks that are noise (accidental or bot clicks that never convert).
      signal: scale of the user x item affinity in the true logits (0: labels independent of the features).
    """

    __pydantic_config__ = CONFIG
    config_key = "simulation.funnel"

    users: PositiveInt = 2000
    items: PositiveInt = 500
    click_rate: OpenUnit = 0.1
    conversion_rate: OpenUnit = 0.15
    noisy_click_share: Annotated[float, Field(ge=0, lt=1)] = 0.3
    signal: NonNegativeFloat = 1.5

    def rules(self) -> None:
        check(self.click_rate / (1.0 - self.noisy_click_share) < 1.0, "simulation.funnel.noisy_click_share",
              self.noisy_click_share, "with click_rate gives a total click rate >= 1")


@dataclasses.dataclass
class SimulationConfig(Section):
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

    __pydantic_config__ = CONFIG
    config_key = "simulation"

    rows: PositiveInt = 200_000
    positive_rate: OpenUnit = 0.256
    seed: int = 2020
    vocab_scale: PositiveFloat = 1.0
    interaction_strength: NonNegativeFloat = 1.0
    output: str = ""
    kind: Literal["criteo", "funnel"] = "criteo"
    funnel: FunnelConfig = dataclasses.field(default_factory=FunnelConfig)


#: The defaults of ``prepare.min_count`` and ``prepare.numeric_transform`` per input format. Criteo x1 as
#: FuxiCTR / BARS prepare it (``dataset_config.yaml`` of the KDD 2024 authors' repository): its numeric columns are
#: already normalised floats, used as they are (no second transform), and ``min_categr_count: 1``. The Kaggle TSV
#: (raw counts) and the multi-task layouts keep count 10 and the signed-log max scaling.
FORMAT_DEFAULTS = {
    "x1": {"min_count": 1, "numeric_transform": "none"},
    "kaggle": {"min_count": 10, "numeric_transform": "log_minmax"},
    "aliexpress": {"min_count": 10, "numeric_transform": "log_minmax"},
    "aliccp": {"min_count": 10, "numeric_transform": "log_minmax"},
}


@dataclasses.dataclass
class PrepareConfig(Section):
    """The Criteo and multi-task Beam pipelines (``pipelines.criteo``, ``pipelines.multitask``).

    Attributes:
      inputs: input files or glob patterns, split 7:2:1 by a deterministic hash of the row.
      train / valid / test: separate input files per split (used instead of ``inputs`` when given).
      input_format: ``auto`` (sniff each file), ``kaggle`` (TSV) or ``x1`` (criteo_x1 CSV with header): the
        ``pointwise`` family; ``aliexpress`` and ``aliccp`` (CSV with header): the ``multitask`` family.
      output: output directory of the prepared dataset.
      beta_pos: weight of positive samples (KDD 2024 Eq. 15); 1.0 keeps the data as it is.
      min_count: categorical values seen fewer times on the train split map to the OOV index; ``null`` (the
        default): the input format's (:data:`FORMAT_DEFAULTS`: 1 for ``x1``, 10 otherwise).
      split_ratios: train, valid, test shares (hash split).
      split_salt: salt of the split hash; change it to draw another split.
      numeric_transform: ``log_minmax``, ``minmax`` or ``none`` (``tfrec.transforms``); ``null`` (the default): the
        input format's (``none`` for ``x1``, whose numeric columns are already normalised floats; ``log_minmax``
        for the raw counts of the Kaggle TSV and the multi-task layouts).
      num_shards: output shards per split (0: one per 256 MiB of input, at least one).
      runner: Beam runner name.
      beam_args: extra Beam pipeline arguments, passed through untouched.
    """

    __pydantic_config__ = CONFIG
    config_key = "prepare"

    inputs: List[str] = dataclasses.field(default_factory=list)
    train: List[str] = dataclasses.field(default_factory=list)
    valid: List[str] = dataclasses.field(default_factory=list)
    test: List[str] = dataclasses.field(default_factory=list)
    input_format: Literal["auto", "kaggle", "x1", "aliexpress", "aliccp"] = "auto"
    output: str = ""
    beta_pos: Annotated[float, Field(gt=0, le=1)] = 1.0
    min_count: Optional[Annotated[int, Field(ge=1)]] = None
    split_ratios: List[float] = dataclasses.field(default_factory=lambda: [0.7, 0.2, 0.1])
    split_salt: str = "tfrec"
    numeric_transform: Optional[Literal["log_minmax", "minmax", "none"]] = None
    num_shards: NonNegativeInt = 4
    runner: str = "DirectRunner"
    beam_args: List[str] = dataclasses.field(default_factory=list)

    def with_format_defaults(self, formats: Iterable[str] = ()) -> "PrepareConfig":
        """A copy with ``min_count`` and ``numeric_transform`` left ``null`` set to the input format's default
        (:data:`FORMAT_DEFAULTS`).

        Args:
          formats: the formats of the input files (``auto`` sniffs one per file); used when ``input_format`` is
            ``auto``. None given with ``auto``: the Kaggle defaults.

        Raises:
          ConfigError: a key left ``null`` whose default differs between the files' formats (x1 and Kaggle files
            in one run): set it.
        """
        kinds = {self.input_format} if self.input_format != "auto" else (set(formats) or {"kaggle"})
        out = {}
        for key in ("min_count", "numeric_transform"):
            if getattr(self, key) is not None:
                continue
            values = {FORMAT_DEFAULTS.get(k, FORMAT_DEFAULTS["kaggle"])[key] for k in kinds}
            check(len(values) == 1, f"prepare.{key}", None,
                  f"has no default for input files of formats {sorted(kinds)} (their defaults differ: "
                  f"{sorted(map(str, values))}); set it")
            out[key] = values.pop()
        return dataclasses.replace(self, **out) if out else self

    def rules(self) -> None:
        _split_ratios("prepare.split_ratios", self.split_ratios)
        separate = bool(self.train or self.valid or self.test)
        check(not (separate and self.inputs), "prepare.inputs", self.inputs,
              "give either inputs (hash split) or train/valid/test files, not both")


@dataclasses.dataclass
class DataConfig(Section):
    """The tf.data reader (``tfrec.data``, ``tfrec.listwise_data``).

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
      in_memory_max_mb: point-wise and multi-task rows: when the train split's parsed rows fit in this many MiB
        (estimated from ``stats.json``'s row count: 4 bytes per number, 32 per string value), training parses the
        split once and serves its batches from memory, each epoch a seeded permutation of the rows
        (``tfrec.data_memory``) instead of the shuffle buffer; 0 always streams the TFRecords.
    """

    __pydantic_config__ = CONFIG
    config_key = "data"

    dir: str = ""
    batch_size: Optional[PositiveInt] = None
    eval_batch_size: Optional[PositiveInt] = None
    shuffle_buffer: NonNegativeInt = 100_000
    cycle_length: PositiveInt = 4
    beta_pos: Optional[Annotated[float, Field(gt=0, le=1)]] = None
    negative_keep_ratio: Annotated[float, Field(gt=0, le=1)] = 1.0
    in_memory_max_mb: NonNegativeInt = 1024

    def with_batch_defaults(self, batch_size: int, eval_batch_size: int) -> "DataConfig":
        """A copy whose unset (``null``) batch sizes are ``batch_size`` / ``eval_batch_size``: the dataset
        family's defaults (``tfrec.families.Family.batch_defaults``: rows of point-wise data, requests of
        list-wise data, whose every request holds tens to hundreds of items)."""
        return dataclasses.replace(self, batch_size=batch_size if self.batch_size is None else self.batch_size,
                                   eval_batch_size=eval_batch_size if self.eval_batch_size is None
                                   else self.eval_batch_size)


@dataclasses.dataclass
class TrainConfig(Section):
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
        better); the weighted AUC equals the AUC when beta_pos = 1. The model decides which it reports
        (``monitors()`` of its section).
      log_every_seconds: tfrec's own progress line (step, loss, examples/s) at most this often (0 disables).
      gradient_diagnostics: record the per-batch gradient diagnostics (KDD 2024 Fig. 2, 3, 9; see
        ``tfrec.metrics.gradients``) in ``<model_dir>/gradient_diagnostics.csv`` and as TensorBoard scalars in
        ``<model_dir>/logs/gradients``.
    """

    __pydantic_config__ = CONFIG
    config_key = "train"

    model_dir: str = ""
    epochs: PositiveInt = 10
    steps_per_epoch: NonNegativeInt = 0
    validation_steps: NonNegativeInt = 0
    learning_rate: PositiveFloat = 1e-3
    clip_norm: NonNegativeFloat = 10.0
    plateau_factor: OpenUnit = 0.1
    plateau_patience: NonNegativeInt = 1
    early_stop_patience: NonNegativeInt = 2
    replicas: Annotated[int, Field(ge=1)] = 2
    seed: int = 2020
    save_every_steps: NonNegativeInt = 100
    verbose: Literal[0, 1, 2] = 0
    monitor: Literal[MONITORS] = "val_weighted_auc"  # type: ignore[valid-type]
    log_every_seconds: NonNegativeFloat = 10.0
    gradient_diagnostics: bool = False


@dataclasses.dataclass
class CascadeConfig(Section):
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

    __pydantic_config__ = CONFIG
    config_key = "cascade"

    requests: PositiveInt = 4000
    users: PositiveInt = 1000
    items: int = 5000
    categories: PositiveInt = 20
    scenarios: Annotated[int, Field(ge=2)] = 2
    days: PositiveInt = 4
    retrieved: int = 500
    ranked: int = 200
    exposed_min: Annotated[int, Field(ge=1)] = 8
    exposed_max: int = 12
    popularity_exponent: PositiveFloat = 1.1
    ranking_noise_head: NonNegativeFloat = 0.3
    ranking_noise_tail: NonNegativeFloat = 1.5
    seed: int = 2024
    output: str = ""

    def rules(self) -> None:
        check(self.exposed_max >= self.exposed_min, "cascade.exposed_max", self.exposed_max,
              "must be >= cascade.exposed_min")
        check(self.ranked >= self.exposed_max, "cascade.ranked", self.ranked, "must be >= cascade.exposed_max")
        check(self.retrieved > self.ranked, "cascade.retrieved", self.retrieved, "must be > cascade.ranked")
        check(self.items > self.retrieved, "cascade.items", self.items,
              "must be > cascade.retrieved (the pool needs items that were not retrieved)")


@dataclasses.dataclass
class HybridSamplesConfig(Section):
    """HCCP hybrid sample construction (``pipelines.hybrid_samples``; HCCP section 3.2): the ``preranking``
    family's Beam pipeline.

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

    __pydantic_config__ = CONFIG
    config_key = "hybrid"

    inputs: List[str] = dataclasses.field(default_factory=list)
    items: List[str] = dataclasses.field(default_factory=list)
    output: str = ""
    chunk_boundaries: List[int] = dataclasses.field(default_factory=lambda: [10, 20, 40, 70, 110, 150])
    chunk_rates: List[float] = dataclasses.field(
        default_factory=lambda: [0.5, 0.125, 0.1, 0.05, 0.025, 0.01, 0.005])
    preranking_samples: NonNegativeInt = 15
    pool_samples: NonNegativeInt = 10
    full_eval_lists: bool = True
    split_by: Literal["hash", "day"] = "hash"
    split_ratios: List[float] = dataclasses.field(default_factory=lambda: [0.7, 0.2, 0.1])
    split_salt: str = "tfrec"
    valid_days: List[int] = dataclasses.field(default_factory=list)
    test_days: List[int] = dataclasses.field(default_factory=list)
    seed: int = 2024
    num_shards: NonNegativeInt = 2
    runner: str = "DirectRunner"
    beam_args: List[str] = dataclasses.field(default_factory=list)

    def rules(self) -> None:
        b, r = self.chunk_boundaries, self.chunk_rates
        check(all(x >= 2 for x in b) and all(x < y for x, y in zip(b, b[1:])), "hybrid.chunk_boundaries", b,
              "must be strictly increasing ranks >= 2")
        check(len(r) == len(b) + 1, "hybrid.chunk_rates", r, "must have one rate more than chunk_boundaries")
        check(all(0.0 <= x <= 1.0 for x in r), "hybrid.chunk_rates", r, "must be rates in [0, 1]")
        _split_ratios("hybrid.split_ratios", self.split_ratios)
        check(not set(self.valid_days) & set(self.test_days), "hybrid.test_days", self.test_days,
              "must not share days with hybrid.valid_days")


@dataclasses.dataclass
class PrerankingConfig(Section):
    """The ``preranking`` family's list sizes and report (the Three-Tower model and its loss are the ``model``
    section, ``name: three_tower``).

    Attributes:
      train_list_size / eval_list_size: items per list after padding (train lists ~42 items; valid / test lists
        keep every candidate, ~510: a longer one is an error that names the size needed, never truncated).
      hit_ks / consistency_ks / octile_k: K of the hit rates, of MAP / NDCG and of the octile split.
    """

    __pydantic_config__ = CONFIG
    config_key = "preranking"

    train_list_size: PositiveInt = 48
    eval_list_size: PositiveInt = 512
    hit_ks: Annotated[List[PositiveInt], Field(min_length=1)] = dataclasses.field(
        default_factory=lambda: [10, 50, 100, 200])
    consistency_ks: Annotated[List[PositiveInt], Field(min_length=1)] = dataclasses.field(
        default_factory=lambda: [10, 50, 100])
    octile_k: PositiveInt = 100
