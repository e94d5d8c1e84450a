"""Multi-task CTR / CVR models: SharedBottom, MMoE, PLE, ESMM, and single-task (STL) baselines.

All models embed raw features with :class:`tfrec.layers.FeatureEmbedding` (the arguments of
:class:`tfrec.models.DCNv2`) and return a dict with, for each task ``t`` of ``tasks``, ``<t>_logit`` and the
probability ``<t>`` (``[batch]``), plus ``logit`` / ``probability``, aliases of the first task (so export code
and tools written for single-task models keep working). ESMM returns ``ctr``, ``cvr`` and
``ctcvr = ctr * cvr`` (see :class:`ESMM` for ``ctcvr_logit``). ``call(..., return_gates=True)`` adds the gate
weights (``gate_<task>`` for MMoE, ``gate_<level>_<task>`` and ``gate_<level>_shared`` for PLE).

Labels are ``y = [batch, 2]`` = (click, conversion); a row with a negative label is padding. The loss lives in
one overridable place, :meth:`MultiTaskModel.task_loss_terms`:

* ``ctr_bce``: :func:`tfrec.losses.pointwise.weighted_bce` of ``ctr_logit`` on the click over all exposures
  (the ``sample_weight`` given to ``fit``, if any, weights its positives, KDD Eq. 15 convention; it is used by
  no other term);
* ``cvr_bce`` (all models but ESMM): BCE of ``cvr_logit`` on the conversion over the clicked samples only
  (non-clicked rows are masked as padding, label -1): the click space of the classical CVR model;
* ``ctcvr_bce``: BCE of ``ctcvr_logit`` on ``click * conversion`` over all exposures (ESMM, or a model whose
  ``tasks`` name ``ctcvr``). ESMM has no ``cvr_bce``: its CVR tower is trained only through ``ctcvr_bce`` (and
  PWiseR on ``cvr`` / ``ctcvr`` where configured), over the entire exposure space (Ma et al., SIGIR 2018);
* ``<t>_pwiser``: for each ``t`` in ``pwiser_tasks``, ``term1 + term2`` of the registered ``pwiser`` loss's
  :meth:`tfrec.losses.PWiseR.pair_terms` (:func:`tfrec.losses.pairwise.pwiser_terms`: conversions over
  click-only and no-click samples) on task ``t``'s logit, over all exposures of the replica's batch (the terms
  need the no-click samples, also for ``cvr``); with ``pwiser_pairing="global"`` over the global batch (labels
  and logits all-gathered across replicas, see :mod:`tfrec.losses.distributed`, so a 2-replica step equals the
  1-device step).

Each BCE term is a mean over the global batch's rows of its space: under a distribution strategy every replica
divides its sum by the count all-reduced across replicas (:func:`tfrec.losses.distributed.global_mean`), so a
2-replica step equals the 1-device step also when the replicas hold different numbers of clicks.

``loss = sum of the BCE terms + pwiser_lambda * sum of the PWiseR terms``. Compile with ``loss=None`` (or no
loss): :meth:`MultiTaskModel.compile` creates a ``<component>_loss`` tracker per component. Metrics: ``<t>_auc``
per task (CTR and CTCVR over exposures, CVR over clicked samples) and ``auc`` / ``logloss`` of the first task in
its space.
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Sequence

import tensorflow as tf
import tf_keras as keras

from tfrec.layers import CGC, MLP, Experts, FeatureEmbedding, Gate
from tfrec.layers.experts import mix
from tfrec import losses
from tfrec.losses.distributed import global_mean
from tfrec.losses.pointwise import weighted_bce_sum
from tfrec.models.base import RankingModel

TASKS = ("ctr", "cvr", "ctcvr")
_LOG_P_MAX = -1e-30  # log(ctcvr) is capped just below 0 so that log(1 - ctcvr) stays finite


def _log1mexp(x: tf.Tensor) -> tf.Tensor:
    """``log(1 - exp(x))`` for ``x < 0``, stable on both sides (Maechler 2012)."""
    return tf.where(x > -0.6931472, tf.math.log(-tf.math.expm1(x)), tf.math.log1p(-tf.exp(x)))


def product_logit(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """``logit(sigma(a) * sigma(b))`` computed in log space: ``log p - log(1 - p)`` with
    ``log p = -softplus(-a) - softplus(-b)`` (``log p`` capped at ``-1e-30``, i.e. ``p <= 1 - 1e-30``, the only
    approximation; there the gradient is 0)."""
    log_p = tf.minimum(-tf.nn.softplus(-a) - tf.nn.softplus(-b), _LOG_P_MAX)
    return log_p - _log1mexp(log_p)


class MultiTaskModel(RankingModel):
    """Base of the multi-task models: features, towers, outputs, loss, metrics. Subclasses implement
    :meth:`task_inputs` (the representation each task's tower reads).

    Args:
      dense / categorical / vocabularies / transform / embedding_dim / embedding_l2: see
        :class:`tfrec.layers.FeatureEmbedding`.
      tasks: task names, a subset of ``("ctr", "cvr", "ctcvr")``, in output order.
      tower_units: hidden sizes of each task's tower (empty: the logit layer reads the task input directly).
      dropout / batch_norm / net_l2: of the towers and experts.
      pwiser_tasks: tasks whose logit gets the PWiseR terms.
      pwiser_lambda / pwiser_m1 / pwiser_m2 / pwiser_space: PWiseR's lambda, margins and score space.
      pwiser_pairing: ``replica`` (pairs within each replica's slice) or ``global`` (the global batch's pairs).
    """

    family = "multitask"

    def __init__(self, dense: Sequence[str], categorical: Sequence[str], vocabularies: Mapping[str, List[str]],
                 transform: Mapping[str, object], embedding_dim: int = 10, embedding_l2: float = 1e-5,
                 tasks: Sequence[str] = ("ctr", "cvr"), tower_units: Sequence[int] = (64,),
                 dropout: float = 0.0, batch_norm: bool = False, net_l2: float = 0.0,
                 pwiser_tasks: Sequence[str] = (), pwiser_lambda: float = 0.1, pwiser_m1: float = 0.1,
                 pwiser_m2: float = 0.2, pwiser_space: str = "probability", pwiser_pairing: str = "replica",
                 **kwargs):
        super().__init__(**kwargs)
        self.tasks = [str(t) for t in tasks]
        if not self.tasks or any(t not in TASKS for t in self.tasks) or len(set(self.tasks)) != len(self.tasks):
            raise ValueError(f"`tasks` must be distinct names from {TASKS}. Received: tasks={list(tasks)}")
        self.pwiser_tasks = [str(t) for t in pwiser_tasks]
        unknown = [t for t in self.pwiser_tasks if t not in self.output_tasks()]
        if unknown:
            raise ValueError(f"`pwiser_tasks` {unknown} are not outputs of the model {self.output_tasks()}")
        if not float(pwiser_lambda) >= 0.0:
            raise ValueError(f"`pwiser_lambda` must be >= 0. Received: pwiser_lambda={pwiser_lambda}")
        self.pwiser_lambda = float(pwiser_lambda)
        # The pair terms are the registered `pwiser` loss's (it validates m1, m2, space and pairing); the model
        # adds its own BCE terms and the weight lambda, so the loss's BCE and `lam` are not used.
        self._pwiser = losses.get("pwiser", m1=pwiser_m1, m2=pwiser_m2, space=pwiser_space, pairing=pwiser_pairing)
        self.pwiser_m1, self.pwiser_m2 = self._pwiser.m1, self._pwiser.m2
        self.pwiser_space, self.pwiser_pairing = self._pwiser.space, self._pwiser.pairing
        self.embedding = FeatureEmbedding(dense, categorical, vocabularies, transform, embedding_dim,
                                          embedding_l2, name="features")
        self.tower_units = [int(u) for u in tower_units]
        self.dropout = float(dropout)
        self.batch_norm = bool(batch_norm)
        self.net_l2 = float(net_l2)
        self.towers = {t: (MLP(self.tower_units, self.dropout, self.batch_norm, self.net_l2, name=f"{t}_tower")
                           if self.tower_units else None) for t in self.tasks}
        self.heads = {t: keras.layers.Dense(1, name=f"{t}_logit") for t in self.tasks}
        self.task_auc = {t: keras.metrics.AUC(num_thresholds=10000, name=f"{t}_auc") for t in self.output_tasks()}

    # ------------------------------------------------------------------------------------------ structure

    def output_tasks(self) -> List[str]:
        """The tasks the model outputs (``tasks``; ESMM adds ``ctcvr``)."""
        return list(self.tasks)

    def loss_tasks(self) -> List[str]:
        """The tasks with a BCE term (``ctr``: exposures; ``cvr``: clicked samples; ``ctcvr``: exposures)."""
        return list(self.tasks)

    def loss_components(self) -> List[str]:
        return [f"{t}_bce" for t in self.loss_tasks()] + [f"{t}_pwiser" for t in self.pwiser_tasks]

    def input_signature(self):
        spec = {d: tf.TensorSpec([None], tf.float32, name=d) for d in self.embedding.dense}
        spec.update({c: tf.TensorSpec([None], tf.string, name=c) for c in self.embedding.categorical})
        return spec

    def flat_embedding(self, features) -> tf.Tensor:
        emb = self.embedding(features)
        return tf.reshape(emb, [-1, self.embedding.num_fields * self.embedding.embedding_dim])

    def task_inputs(self, x0: tf.Tensor, training=None):
        """``({task: [batch, d]}, {gate name: weights})``: the input of each task's tower, and the gates."""
        raise NotImplementedError

    def tower_logit(self, task: str, h: tf.Tensor, training=None) -> tf.Tensor:
        if self.towers[task] is not None:
            h = self.towers[task](h, training=training)
        return tf.squeeze(self.heads[task](h), axis=1)

    def call(self, features, training=None, return_gates=False):
        inputs, gates = self.task_inputs(self.flat_embedding(features), training=training)
        out: Dict[str, tf.Tensor] = {}
        for t in self.tasks:
            logit = self.tower_logit(t, inputs[t], training=training)
            out[f"{t}_logit"], out[t] = logit, tf.sigmoid(logit)
        self.add_derived_outputs(out)
        first = self.tasks[0]
        out["logit"], out["probability"] = out[f"{first}_logit"], out[first]
        if return_gates:
            out.update(gates)
        return out

    def add_derived_outputs(self, out: Dict[str, tf.Tensor]) -> None:
        """Hook for outputs derived from the towers' (ESMM's ``ctcvr``)."""
        return None  # (a docstring-only body trips AutoGraph's converter)

    # ------------------------------------------------------------------------------------------ loss

    @staticmethod
    def split_labels(y):
        y = tf.reshape(tf.cast(y, tf.float32), [-1, 2])
        click, conv = y[:, 0], y[:, 1]
        pad = tf.logical_or(click < 0, conv < 0)
        return click, conv, pad

    def task_labels(self, task: str, y) -> tf.Tensor:
        """Task ``task``'s labels, -1 outside its training space (padding; ``cvr``: non-clicked samples too)."""
        click, conv, pad = self.split_labels(y)
        minus = -tf.ones_like(click)
        if task == "ctr":
            return tf.where(pad, minus, click)
        if task == "cvr":
            return tf.where(tf.logical_or(pad, tf.not_equal(click, 1.0)), minus, conv)
        return tf.where(pad, minus, click * conv)  # ctcvr: click and conversion, over exposures

    def task_loss_terms(self, y, y_pred, sample_weight):
        """``(loss, {component: term})``: per-task BCE plus ``pwiser_lambda`` times the PWiseR terms."""
        terms: Dict[str, tf.Tensor] = {}
        n = tf.reduce_sum(tf.cast(tf.reshape(y, [-1]) >= 0, tf.float32))  # the loss trackers' weight (base)
        for t in self.loss_tasks():
            weights = sample_weight if t == "ctr" else None
            total, count = weighted_bce_sum(self.task_labels(t, y), y_pred[f"{t}_logit"], weights)
            terms[f"{t}_bce"] = global_mean(total, count, n)
        for t in self.pwiser_tasks:
            t1, t2 = self._pwiser.pair_terms(tf.reshape(tf.cast(y, tf.float32), [-1, 2]), y_pred[f"{t}_logit"])
            terms[f"{t}_pwiser"] = t1 + t2
        loss = tf.add_n([terms[f"{t}_bce"] for t in self.loss_tasks()])
        if self.pwiser_tasks:
            loss += self.pwiser_lambda * tf.add_n([terms[f"{t}_pwiser"] for t in self.pwiser_tasks])
        return loss, terms

    # ------------------------------------------------------------------------------------------ compile, metrics

    def compile(self, optimizer="rmsprop", loss=None, **kwargs):
        """Keras' ``compile`` with the model's own loss (``loss`` must be None); one tracker per component."""
        if loss is not None:
            raise ValueError(f"{type(self).__name__} computes its own loss (task_loss_terms); compile it with "
                             f"loss=None. Received: loss={loss!r}")
        super().compile(optimizer=optimizer, loss=None, **kwargs)
        with self.distribute_strategy.scope():
            self._component_trackers = {c: keras.metrics.Mean(name=f"{c}_loss") for c in self.loss_components()}

    @property
    def metrics(self):
        return [self.loss_tracker, self.regularization_tracker, self.total_loss_tracker,
                *getattr(self, "_component_trackers", {}).values(), *self.task_auc.values(), self.auc_metric,
                self.logloss_metric]

    def compute_metrics(self, x, y, y_pred, sample_weight):
        first = self.tasks[0]
        for t, metric in self.task_auc.items():
            labels = self.task_labels(t, y)
            valid = labels >= 0
            p = tf.boolean_mask(tf.reshape(y_pred[t], [-1]), valid)
            labels = tf.boolean_mask(labels, valid)
            metric.update_state(labels, p)
            if t == first:
                self.auc_metric.update_state(labels, p)
                pc = tf.clip_by_value(p, 1e-7, 1.0 - 1e-7)
                self.logloss_metric.update_state(-(labels * tf.math.log(pc)
                                                   + (1.0 - labels) * tf.math.log(1.0 - pc)))
        return {m.name: m.result() for m in self.metrics}

    # ------------------------------------------------------------------------------------------ config

    def get_config(self):
        emb = self.embedding.get_config()
        return {"dense": emb["dense"], "categorical": emb["categorical"], "vocabularies": emb["vocabularies"],
                "transform": emb["transform"], "embedding_dim": emb["embedding_dim"],
                "embedding_l2": emb["embedding_l2"], "tasks": list(self.tasks), "tower_units": self.tower_units,
                "dropout": self.dropout, "batch_norm": self.batch_norm, "net_l2": self.net_l2,
                "pwiser_tasks": list(self.pwiser_tasks), "pwiser_lambda": self.pwiser_lambda,
                "pwiser_m1": self.pwiser_m1, "pwiser_m2": self.pwiser_m2, "pwiser_space": self.pwiser_space,
                "pwiser_pairing": self.pwiser_pairing, "name": self.name}


@keras.saving.register_keras_serializable(package="tfrec")
class SharedBottom(MultiTaskModel):
    """Shared-bottom multi-task model (Caruana 1997): one MLP ``bottom_units`` on the embeddings, shared by
    every task's tower."""

    def __init__(self, *args, bottom_units: Sequence[int] = (128,), **kwargs):
        super().__init__(*args, **kwargs)
        self.bottom_units = [int(u) for u in bottom_units]
        self.bottom = MLP(self.bottom_units, self.dropout, self.batch_norm, self.net_l2, name="bottom")

    def task_inputs(self, x0, training=None):
        h = self.bottom(x0, training=training)
        return {t: h for t in self.tasks}, {}

    def get_config(self):
        return {**super().get_config(), "bottom_units": self.bottom_units}


@keras.saving.register_keras_serializable(package="tfrec")
class MMoE(MultiTaskModel):
    """Multi-gate Mixture-of-Experts (Ma et al., KDD 2018): ``num_experts`` MLP experts on the embeddings and one
    softmax gate per task, ``f^k(x) = sum_i softmax(W_k x)_i f_i(x)``; ``gate_<task>`` ``[batch, num_experts]``."""

    def __init__(self, *args, num_experts: int = 4, expert_units: Sequence[int] = (64,), **kwargs):
        super().__init__(*args, **kwargs)
        self.num_experts = int(num_experts)
        self.expert_units = [int(u) for u in expert_units]
        self.experts = Experts(self.num_experts, self.expert_units, self.dropout, self.batch_norm, self.net_l2,
                               name="experts")
        self.gates = {t: Gate(self.num_experts, self.net_l2, name=f"{t}_gate") for t in self.tasks}

    def task_inputs(self, x0, training=None):
        experts = self.experts(x0, training=training)
        gates = {f"gate_{t}": self.gates[t](x0) for t in self.tasks}
        return {t: mix(gates[f"gate_{t}"], experts) for t in self.tasks}, gates

    def get_config(self):
        return {**super().get_config(), "num_experts": self.num_experts, "expert_units": self.expert_units}


@keras.saving.register_keras_serializable(package="tfrec")
class PLE(MultiTaskModel):
    """Progressive Layered Extraction (Tang et al., RecSys 2020): ``num_levels`` stacked CGC levels with
    ``num_shared_experts`` shared and ``num_task_experts`` task-specific experts each; every level but the last
    has a shared gate. Gates: ``gate_<level>_<task>`` and ``gate_<level>_shared``."""

    def __init__(self, *args, num_levels: int = 2, num_shared_experts: int = 2, num_task_experts: int = 2,
                 expert_units: Sequence[int] = (64,), **kwargs):
        super().__init__(*args, **kwargs)
        if int(num_levels) < 1:
            raise ValueError(f"`num_levels` must be >= 1. Received: num_levels={num_levels}")
        self.num_levels = int(num_levels)
        self.num_shared_experts = int(num_shared_experts)
        self.num_task_experts = int(num_task_experts)
        self.expert_units = [int(u) for u in expert_units]
        self.levels = [CGC(len(self.tasks), self.num_shared_experts, self.num_task_experts, self.expert_units,
                           self.dropout, self.batch_norm, self.net_l2, shared_gate=i < self.num_levels - 1,
                           name=f"cgc_{i}") for i in range(self.num_levels)]

    def task_inputs(self, x0, training=None):
        h, gates = x0, {}
        for i, level in enumerate(self.levels):
            h, level_gates = level(h, training=training)
            for name, g in zip(self.tasks + ["shared"], level_gates):
                gates[f"gate_{i}_{name}"] = g
        return dict(zip(self.tasks, h[:len(self.tasks)])), gates

    def get_config(self):
        return {**super().get_config(), "num_levels": self.num_levels,
                "num_shared_experts": self.num_shared_experts, "num_task_experts": self.num_task_experts,
                "expert_units": self.expert_units}


@keras.saving.register_keras_serializable(package="tfrec")
class ESMM(MultiTaskModel):
    """Entire Space Multi-task Model (Ma et al., SIGIR 2018): CTR and CVR towers on shared embeddings, with
    ``pCTCVR = pCTR x pCVR``, trained over all exposures by ``ctr_bce`` and ``ctcvr_bce`` only (no loss on the
    CVR output itself, so the CVR tower learns only through ``ctcvr``).

    Outputs ``ctr``, ``cvr``, ``ctcvr`` = ``ctr * cvr`` and their logits; ``ctcvr_logit`` =
    ``log(ctcvr / (1 - ctcvr))`` computed in log space from the two logits (:func:`product_logit`), so the
    ``ctcvr_bce`` on it is stable. ``tasks`` is fixed to ``("ctr", "cvr")``.

    Args:
      bottom_units: an optional shared MLP between the embeddings and the towers (empty: the towers read the
        embeddings directly, as in the paper).
    """

    def __init__(self, *args, bottom_units: Sequence[int] = (), **kwargs):
        tasks = tuple(kwargs.pop("tasks", ("ctr", "cvr")))
        if tasks != ("ctr", "cvr"):
            raise ValueError(f"ESMM's tasks are ('ctr', 'cvr'). Received: tasks={list(tasks)}")
        super().__init__(*args, tasks=tasks, **kwargs)
        self.bottom_units = [int(u) for u in bottom_units]
        self.bottom = (MLP(self.bottom_units, self.dropout, self.batch_norm, self.net_l2, name="bottom")
                       if self.bottom_units else None)

    def output_tasks(self):
        return ["ctr", "cvr", "ctcvr"]

    def loss_tasks(self):
        return ["ctr", "ctcvr"]

    def task_inputs(self, x0, training=None):
        h = self.bottom(x0, training=training) if self.bottom is not None else x0
        return {t: h for t in self.tasks}, {}

    def add_derived_outputs(self, out):
        out["ctcvr"] = out["ctr"] * out["cvr"]
        out["ctcvr_logit"] = product_logit(out["ctr_logit"], out["cvr_logit"])

    def get_config(self):
        return {**super().get_config(), "bottom_units": self.bottom_units}


@keras.saving.register_keras_serializable(package="tfrec")
class SingleTask(MultiTaskModel):
    """A single-task (STL) baseline: one tower on the embeddings (an MLP ``tower_units``) for ``task``, trained
    in the task's space (``ctr``/``ctcvr``: exposures; ``cvr``: clicked samples)."""

    def __init__(self, *args, task: str = "ctr", **kwargs):
        kwargs.pop("tasks", None)
        super().__init__(*args, tasks=(task,), **kwargs)
        self.task = str(task)

    def task_inputs(self, x0, training=None):
        return {self.task: x0}, {}

    def get_config(self):
        config = super().get_config()
        config.pop("tasks")
        return {**config, "task": self.task}
