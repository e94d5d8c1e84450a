"""The ``model`` section: one dataclass per model, chosen by ``model.name`` (a pydantic discriminated union).

Each model's section carries its architecture and its own loss settings (``model.loss``):

* ``dcn_v2`` (``pointwise`` family): DCN V2 (``tfrec.models.ctr``) and its training loss, a registered loss by
  name (``model.loss.name``, ``model.loss.params``; ``tfrec.losses``);
* ``shared_bottom``, ``mmoe``, ``ple``, ``esmm``, ``single_task`` (``multitask`` family,
  ``tfrec.models.multitask``): per-task BCE plus ``model.loss.lam`` times the registered ``pwiser`` loss's pair
  terms on the tasks of ``model.loss.pwiser_tasks``;
* ``three_tower`` (``preranking`` family): HCCP's Three-Tower model (``tfrec.models.preranking``), its variant,
  the weights of Eq. 6, Margin InfoNCE's ``beta`` schedule and the COPR / Rethink weights (``model.loss``).

A ``model`` mapping without ``name`` is ``dcn_v2``; a dataset whose family has another default model trains that
one while the section is left at the ``dcn_v2`` defaults (``tfrec.families.Family.resolve``).
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Dict, List, Literal, Optional, Tuple, Union

from pydantic import Discriminator, Field, Tag

from tfrec.config.base import CONFIG, ConfigError, Section, check
from tfrec.config.sections import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt
from tfrec.hccp_variants import VARIANTS

Units = List[PositiveInt]
Dropout = Annotated[float, Field(ge=0, lt=1)]
Task = Literal["ctr", "cvr", "ctcvr"]
#: The multi-task model names (``tfrec.models.multitask``).
MULTITASK_MODELS = ("shared_bottom", "mmoe", "ple", "esmm", "single_task")
#: The monitors every model reports (``train.monitor``); a multi-task model adds ``val_<task>_auc``.
BASE_MONITORS = ("val_auc", "val_weighted_auc")


# ------------------------------------------------------------------------------------------------ dcn_v2


@dataclasses.dataclass
class LossConfig(Section):
    """DCN V2's training loss, by registered name (``tfrec.losses``).

    Attributes:
      name: registered loss name (``tfrec.losses.names()`` lists them).
      params: the loss's own arguments; each key is checked against the loss's constructor.
    """

    __pydantic_config__ = CONFIG
    config_key = "model.loss"

    name: str = "weighted_bce"
    params: Dict[str, Any] = dataclasses.field(default_factory=dict)

    def rules(self) -> None:
        from tfrec import losses  # local: losses imports TensorFlow.

        try:
            losses.check_config(self.name, self.params)
            losses.get(self.name, **self.params)  # the loss checks its values (ranges, choices)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"`model.loss`: {e}") from None


@dataclasses.dataclass
class DCNv2Config(Section):
    """DCN V2 (``tfrec.models.ctr``); defaults are the KDD 2024 / BARS Criteo x1 setting.

    Attributes:
      name: ``dcn_v2``.
      structure: ``parallel`` (cross network beside the DNN) or ``stacked`` (DNN on the cross output).
      num_cross_layers: number of cross layers.
      cross_low_rank: 0 for full-rank cross layers, otherwise the rank of the low-rank (mixture-free) cross.
      dnn_hidden_units: hidden layer sizes of the DNN.
      embedding_dim: embedding size of every field.
      dropout: dropout rate after each hidden layer.
      embedding_l2: FuxiCTR's ``embedding_regularizer`` lambda on the embedding tables: the penalty is
        ``(lambda / 2) * sum(w^2)`` over the whole tables, every step (``tfrec.layers.embedding.FeatureEmbedding``).
      net_l2: L2 coefficient on the dense kernels.
      batch_norm: batch normalisation in the DNN.
      head: ``binary`` (one logit) or ``jrc`` (two logits, non-click and click, as the ``jrc`` loss needs).
      loss: the training loss (:class:`LossConfig`).
    """

    __pydantic_config__ = CONFIG
    config_key = "model"

    name: Literal["dcn_v2"] = "dcn_v2"
    structure: Literal["parallel", "stacked"] = "parallel"
    num_cross_layers: NonNegativeInt = 3
    cross_low_rank: NonNegativeInt = 0
    dnn_hidden_units: Units = dataclasses.field(default_factory=lambda: [500, 500, 500])
    embedding_dim: PositiveInt = 10
    dropout: Dropout = 0.1
    embedding_l2: NonNegativeFloat = 1e-5
    net_l2: NonNegativeFloat = 0.0
    batch_norm: bool = False
    head: Literal["binary", "jrc"] = "binary"
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)

    def rules(self) -> None:
        check(self.num_cross_layers > 0 or bool(self.dnn_hidden_units), "model.num_cross_layers",
              self.num_cross_layers, "the model needs cross layers or DNN layers")
        # JRC's loss reads the two logits only the JRC head produces.
        check(self.loss.name != "jrc" or self.head == "jrc", "model.head", self.head,
              "must be jrc when model.loss.name is jrc (the JRC loss reads the two logits of the JRC head)")

    def monitors(self) -> Tuple[str, ...]:
        """The ``train.monitor`` values the model reports."""
        return BASE_MONITORS


# ------------------------------------------------------------------------------------------------ multi-task


@dataclasses.dataclass
class MultiTaskLossConfig(Section):
    """A multi-task model's loss: per-task BCE (CTR and CTCVR over exposures, CVR over clicked samples) plus
    ``lam`` times the pair terms of the registered ``pwiser`` loss (``tfrec.losses.PWiseR``) on each task of
    ``pwiser_tasks``.

    Attributes:
      pwiser_tasks: tasks whose logit gets the PWiseR terms (empty: BCE only).
      lam / m1 / m2: PWiseR's weight and margins (conversions over click-only samples by ``m1``, over no-click
        samples by ``m2``).
      space: ``probability`` or ``logit`` (the score the hinge compares).
      pairing: ``replica`` (pairs within each replica's slice) or ``global`` (all-gathered: the global batch's
        pairs; 2 replicas equal 1 device).
    """

    __pydantic_config__ = CONFIG
    config_key = "model.loss"

    pwiser_tasks: List[Task] = dataclasses.field(default_factory=list)
    lam: NonNegativeFloat = 0.1
    m1: NonNegativeFloat = 0.1
    m2: NonNegativeFloat = 0.2
    space: Literal["probability", "logit"] = "probability"
    pairing: Literal["replica", "global"] = "replica"


@dataclasses.dataclass
class _MultiTaskConfig(Section):
    """What every multi-task model has (``tfrec.models.multitask``): the embeddings, the towers and the loss.

    Attributes:
      embedding_dim / embedding_l2 / dropout / batch_norm / net_l2: as DCN V2's.
      tower_units: hidden sizes of each task's tower.
      loss: the multi-task loss (:class:`MultiTaskLossConfig`).
    """

    __pydantic_config__ = CONFIG
    config_key = "model"

    embedding_dim: PositiveInt = 10
    dropout: Dropout = 0.1
    embedding_l2: NonNegativeFloat = 1e-5
    net_l2: NonNegativeFloat = 0.0
    batch_norm: bool = False
    tower_units: Units = dataclasses.field(default_factory=lambda: [64])
    loss: MultiTaskLossConfig = dataclasses.field(default_factory=MultiTaskLossConfig)

    def output_tasks(self) -> List[str]:
        """The tasks the model outputs."""
        return list(getattr(self, "tasks"))

    def monitors(self) -> Tuple[str, ...]:
        return BASE_MONITORS + tuple(f"val_{t}_auc" for t in self.output_tasks())

    def rules(self) -> None:
        tasks = getattr(self, "tasks", None)
        if tasks is not None:
            check(bool(tasks) and len(set(tasks)) == len(tasks), "model.tasks", tasks,
                  "must be distinct names of ctr, cvr, ctcvr")
        p = self.loss.pwiser_tasks
        check(len(set(p)) == len(p) and all(t in self.output_tasks() for t in p), "model.loss.pwiser_tasks", p,
              f"must be distinct outputs of {getattr(self, 'name')} {self.output_tasks()}")


def _tasks():
    return dataclasses.field(default_factory=lambda: ["ctr", "cvr"])


@dataclasses.dataclass
class SharedBottomConfig(_MultiTaskConfig):
    """SharedBottom: a shared MLP (``bottom_units``) under one tower per task in ``tasks``."""

    name: Literal["shared_bottom"] = "shared_bottom"
    tasks: List[Task] = _tasks()
    bottom_units: Units = dataclasses.field(default_factory=lambda: [128])


@dataclasses.dataclass
class MMoEConfig(_MultiTaskConfig):
    """MMoE: ``num_experts`` experts of ``expert_units`` and one gate per task in ``tasks``."""

    name: Literal["mmoe"] = "mmoe"
    tasks: List[Task] = _tasks()
    num_experts: Annotated[int, Field(ge=1)] = 4
    expert_units: Units = dataclasses.field(default_factory=lambda: [64])


@dataclasses.dataclass
class PLEConfig(_MultiTaskConfig):
    """PLE: ``num_levels`` CGC levels of ``num_shared_experts`` shared and ``num_task_experts`` per-task experts."""

    name: Literal["ple"] = "ple"
    tasks: List[Task] = _tasks()
    num_levels: Annotated[int, Field(ge=1)] = 2
    num_shared_experts: NonNegativeInt = 2
    num_task_experts: NonNegativeInt = 2
    expert_units: Units = dataclasses.field(default_factory=lambda: [64])

    def rules(self) -> None:
        super().rules()
        check(self.num_shared_experts + self.num_task_experts >= 1, "model.num_task_experts",
              self.num_task_experts, "PLE needs at least one expert per gate (shared + task experts >= 1)")


@dataclasses.dataclass
class ESMMConfig(_MultiTaskConfig):
    """ESMM: CTR and CVR towers on a shared MLP (``bottom_units``; ``[]`` for the paper's ESMM); it outputs
    ``ctcvr = ctr * cvr`` too."""

    name: Literal["esmm"] = "esmm"
    tasks: List[Task] = _tasks()
    bottom_units: List[PositiveInt] = dataclasses.field(default_factory=lambda: [128])

    def output_tasks(self) -> List[str]:
        return ["ctr", "cvr", "ctcvr"]

    def rules(self) -> None:
        check(self.tasks == ["ctr", "cvr"], "model.tasks", self.tasks,
              "must be [ctr, cvr] for esmm (its ctcvr output is ctr * cvr)")
        super().rules()


@dataclasses.dataclass
class SingleTaskConfig(_MultiTaskConfig):
    """One task's own model (``task``) on the multi-task data."""

    name: Literal["single_task"] = "single_task"
    task: Task = "ctr"

    def output_tasks(self) -> List[str]:
        return [self.task]


# ------------------------------------------------------------------------------------------------ three_tower


@dataclasses.dataclass
class ThreeTowerLossConfig(Section):
    """The weights of HCCP's Eq. 6 (section 4.1.4's defaults), Margin InfoNCE's ``beta`` schedule and the weights of
    the ``copr`` and ``rethink`` variants.

    Attributes:
      task_weights: ``lambda_t`` per task (click 0.98, purchase 0.2, diversity 0.1).
      global_weight: ``lambda_c`` of the global consistency loss (0.05).
      alpha: local consistency weight (0.05). neg_weight: Eq. 6's ``beta``, the contrastive weight (0.5).
      margin / temperature: Margin InfoNCE's ``m`` (0.9) and ``tau`` (0.1).
      beta_init: Algorithm 1's blend coefficient at the start (9999, the paper's).
      beta_final / beta_final_at: ``beta`` reaches ``beta_final`` (default 0.01) after the fraction
        ``beta_final_at`` (default 0.5) of the run's planned steps (epochs x steps per epoch) and stays there; the
        per-step factor is derived from the run (``tfrec.train_preranking.beta_schedule``). The paper gives no
        factor.
      beta_scale: a fixed per-step factor instead (Algorithm 1's literal ``beta *= scale``, no floor); exclusive
        with ``beta_final`` / ``beta_final_at``.
      in_batch_rate: N4 sampling rate (0.05).
      copr_weight / copr_reg_weight / copr_chunk_size / copr_relax_units: the ``copr`` variant's pairwise
        consistency and relaxation-regularisation weights, the ranking-order chunk size and the relaxation net's
        hidden sizes (``tfrec.losses.cascade_baselines``).
      rethink_weight / rethink_distill_weight: the ``rethink`` variant's list-wise and distillation weights.
    """

    __pydantic_config__ = CONFIG
    config_key = "model.loss"

    task_weights: List[NonNegativeFloat] = dataclasses.field(default_factory=lambda: [0.98, 0.2, 0.1])
    global_weight: NonNegativeFloat = 0.05
    alpha: NonNegativeFloat = 0.05
    neg_weight: NonNegativeFloat = 0.5
    margin: NonNegativeFloat = 0.9
    temperature: PositiveFloat = 0.1
    beta_init: NonNegativeFloat = 9999.0
    beta_scale: Optional[Annotated[float, Field(gt=0, le=1)]] = None
    beta_final: Optional[Annotated[float, Field(gt=0, allow_inf_nan=False)]] = None
    beta_final_at: Optional[Annotated[float, Field(gt=0, le=1)]] = None
    in_batch_rate: Annotated[float, Field(ge=0, le=1)] = 0.05
    copr_weight: NonNegativeFloat = 1.0
    copr_reg_weight: NonNegativeFloat = 0.1
    copr_chunk_size: PositiveInt = 1
    copr_relax_units: Annotated[Units, Field(min_length=1)] = dataclasses.field(default_factory=lambda: [16])
    rethink_weight: NonNegativeFloat = 1.0
    rethink_distill_weight: NonNegativeFloat = 1.0

    def rules(self) -> None:
        check(self.beta_scale is None or (self.beta_final is None and self.beta_final_at is None),
              "model.loss.beta_scale", self.beta_scale, "is a fixed schedule: leave model.loss.beta_final and "
              "model.loss.beta_final_at unset with it (they derive the factor from the run)")

    def model_kwargs(self) -> Dict[str, Any]:
        """The :class:`tfrec.models.preranking.ThreeTower` loss arguments of this section, but for the ``beta``
        schedule (``beta_scale``, ``beta_final``, ``beta_final_at``), which the trainer derives from the run
        (``tfrec.train_preranking.beta_schedule``)."""
        schedule = ("beta_scale", "beta_final", "beta_final_at")
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in schedule}


@dataclasses.dataclass
class ThreeTowerConfig(Section):
    """HCCP's Three-Tower pre-ranking model (``tfrec.models.preranking``) and its loss variant.

    Attributes:
      name: ``three_tower``.
      variant: ``hccp`` (full), ``base``, ``base_listnet``, ``base_listmle``, ``wo_up``, ``wo_prc``, ``wo_neg``,
        ``wo_margin`` (HCCP 4.1.3), ``copr`` or ``rethink`` (the other papers' baselines of Tables 1-2); the terms
        each turns on are in ``tfrec.hccp_variants``.
      tasks: the Cxr estimation tasks (labels of the list-wise dataset).
      hash_bins / embedding_dim / embedding_l2: hashed feature embeddings.
      num_experts / expert_units: the user tower's MMoE (8 experts).
      item_units / cross_units: hidden sizes of the item and cross-feature towers.
      output_dim: user / item embedding size.
      loss: the weights of Eq. 6 (:class:`ThreeTowerLossConfig`).
    """

    __pydantic_config__ = CONFIG
    config_key = "model"

    name: Literal["three_tower"] = "three_tower"
    variant: Literal[tuple(VARIANTS)] = "hccp"  # type: ignore[valid-type]
    tasks: List[str] = dataclasses.field(default_factory=lambda: ["click", "purchase", "diversity"])
    hash_bins: PositiveInt = 20000
    embedding_dim: PositiveInt = 16
    embedding_l2: NonNegativeFloat = 0.0
    num_experts: PositiveInt = 8
    expert_units: Annotated[Units, Field(min_length=1)] = dataclasses.field(default_factory=lambda: [64])
    item_units: Units = dataclasses.field(default_factory=lambda: [64])
    cross_units: Units = dataclasses.field(default_factory=lambda: [32])
    output_dim: PositiveInt = 32
    loss: ThreeTowerLossConfig = dataclasses.field(default_factory=ThreeTowerLossConfig)

    def rules(self) -> None:
        check(len(self.tasks) > 0 and len(set(self.tasks)) == len(self.tasks) and "global" not in self.tasks,
              "model.tasks", self.tasks, "must be distinct task names other than 'global'")
        check(len(self.loss.task_weights) == len(self.tasks), "model.loss.task_weights", self.loss.task_weights,
              "must be one weight >= 0 per task")

    def monitors(self) -> Tuple[str, ...]:
        return BASE_MONITORS

    def model_kwargs(self) -> Dict[str, Any]:
        """The :class:`tfrec.models.preranking.ThreeTower` arguments of this section, but for the ``beta`` schedule
        (:meth:`ThreeTowerLossConfig.model_kwargs`)."""
        keys = ("variant", "tasks", "hash_bins", "embedding_dim", "embedding_l2", "num_experts", "expert_units",
                "item_units", "cross_units", "output_dim")
        return {**{k: getattr(self, k) for k in keys}, **self.loss.model_kwargs()}


# ------------------------------------------------------------------------------------------------ the union

#: Model name -> its section class.
MODELS = {"dcn_v2": DCNv2Config, "shared_bottom": SharedBottomConfig, "mmoe": MMoEConfig, "ple": PLEConfig,
          "esmm": ESMMConfig, "single_task": SingleTaskConfig, "three_tower": ThreeTowerConfig}
#: The model a ``model`` mapping without ``name`` is.
DEFAULT_MODEL = "dcn_v2"


def model_name(value: Any) -> Any:
    """The discriminator of the union: a mapping's ``name`` (``dcn_v2`` when absent), a section's ``name``."""
    if isinstance(value, dict):
        return value.get("name", DEFAULT_MODEL)
    return getattr(value, "name", None)


#: The type of the ``model`` section: one of :data:`MODELS`, by ``name``.
ModelConfig = Annotated[Union[tuple(Annotated[cls, Tag(name)] for name, cls in MODELS.items())],  # type: ignore
                        Discriminator(model_name)]
