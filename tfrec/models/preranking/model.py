"""HCCP's Three-Tower pre-ranking model with its hybrid objective (Zhao et al., WWW 2025, sections 3.1-3.3, Eq. 6).

Scores. For task ``t`` (the global consistency task ``global`` and the Cxr tasks, default click, purchase,
diversity), user ``u`` and item ``j``:

```
dot_t(u, j)   = u^t . i_j                                  (user tower with MMoE, item tower)
logit_t(u, j) = 2 sigmoid(c_t(u, j)) * dot_t(u, j)         (c_t: the cross-feature tower's score)
p_t(u, j)     = sigmoid(logit_t(u, j))
```

Section 3.1.1 says only that scores "are computed by dot-product across user and item embeddings, weighted with
cross-feature scores"; tfrec reads "weighted" as a multiplicative weight in ``(0, 2)`` (1 when the cross tower
outputs 0), so the cross features rescale the user-item affinity without being able to flip its sign, and the
dot product alone still ranks items where cross features are missing (N4-N5, section 4.1.4).

The loss, one overridable place (:meth:`ThreeTower.task_loss_terms`), Eq. 6:

```
L = lambda_c L^c + sum_t lambda_t (L_cali^t + alpha L_cons^t + beta L_neg^t)
```

* ``cali_<t>``: Eq. 1, :func:`tfrec.losses.pointwise.impression_bce`: BCE of ``logit_t`` on the impressions (N1)
  with the task's labels, summed over the impressions and divided by ``|U|``, the replica's number of requests
  (Eq. 1's normalisation, not a mean over impressions);
* ``global``: Eq. 3, :func:`tfrec.losses.consistency.list_mle` of ``logit_global`` over ``R^c`` (label
  ``rc_position``: N1 and N2);
* ``local_<t>``: Eq. 4, ListMLE of ``logit_t`` over ``R^t`` (label ``rt_<t>_position``: the impressions), or
  ListNet over the impressions in the ``base_listnet`` variant
  (:func:`tfrec.losses.consistency.list_net_impressions`);
* ``infonce_<t>``: InfoNCE (``tfrec.losses.InfoNCE``) of the final score ``logit_t``: task positives (impressions
  with label 1) against the request's N2-N3 (section 4.1.4: cross features of N4-N5 are not available);
* ``margin_infonce_<t>``: Margin InfoNCE (Eq. 5, Algorithm 1, ``tfrec.losses.MarginInfoNCE``) of ``dot_t``:
  positives against hard negatives N2-N3 and easy negatives N4-N5 (``info_nce`` in the ``wo_*`` variants, same
  key); N4 comes from :mod:`tfrec.models.preranking.negatives` (other requests' impressions, own items masked,
  sampled at ``in_batch_rate``), drawn once per step and shared by the tasks, during training only (evaluation
  losses have no N4);
* ``L_neg^t`` = the mean of the contrastive terms that are on (4.1.4: "the average of the two losses").

Defaults are section 4.1.4's: ``lambda_c`` 0.05; ``lambda_t`` 0.98 / 0.2 / 0.1; ``alpha`` 0.05; ``beta``
(``neg_weight``) 0.5; ``m`` 0.9; ``tau`` 0.1. The variant (:mod:`tfrec.hccp_variants`) switches terms
off. Algorithm 1's annealed ``beta`` (``beta_init``, ``beta_scale``, floor ``beta_final``) is one variable shared by
the tasks, advanced once per step by :meth:`on_train_step_end`, saved in checkpoints and logged after each step as
``beta`` (the Keras history and TensorBoard record its value at the end of each epoch).

Inputs: the parsed features of :meth:`tfrec.features.ListwiseSchema.parse` (context ``[B]``, sequences as
``tf.SparseTensor``, items ``[B, L]``, ``example_mask``). Labels ``y``: a dict of ``[B, L]`` tensors
(``sample_type``, ``rc_position``, ``rt_<t>_position``, the task labels, ``example_mask``), see
:func:`tfrec.listwise_data.split_labels`.
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence

import tensorflow as tf
import tf_keras as keras

from tfrec.features import SAMPLE_N1, SAMPLE_N2, SAMPLE_N3, SAMPLE_N5
from tfrec.losses.classes.preranking import EASY_NEGATIVE, HARD_NEGATIVE, POSITIVE, InfoNCE, MarginInfoNCE
from tfrec.losses.consistency import list_mle, list_net_impressions
from tfrec.losses.pointwise import impression_bce
from tfrec.models.base import RankingModel
import tfrec.models.preranking.baselines as baselines
import tfrec.models.preranking.negatives as negatives
from tfrec.models.preranking.serving import ServingFunctions
from tfrec.models.preranking.towers import CONTEXT, HISTORY, CrossTower, ItemTower, UserTower
from tfrec.hccp_variants import switches

GLOBAL = "global"


@keras.saving.register_keras_serializable(package="tfrec")
class ThreeTower(RankingModel):
    """HCCP's Three-Tower pre-ranking model and loss (see the module docstring).

    Args:
      tasks: the Cxr estimation tasks (labels of the list-wise dataset).
      variant: the loss variant (``hccp``, ``base``, ``base_listnet``, ``base_listmle``, ``wo_up``, ``wo_prc``,
        ``wo_neg``, ``wo_margin``).
      hash_bins / embedding_dim / embedding_l2: hashed feature embeddings.
      num_experts / expert_units: the user tower's MMoE.
      item_units / cross_units: hidden sizes of the item and cross towers.
      output_dim: user / item embedding size.
      global_weight: ``lambda_c``. task_weights: ``lambda_t`` per task, in ``tasks`` order.
      alpha: local consistency weight. neg_weight: Eq. 6's ``beta`` (contrastive weight).
      margin / temperature / beta_init / beta_scale: Margin InfoNCE's ``m``, ``tau`` and Algorithm 1's schedule.
      beta_final: the floor of ``beta`` (None: Algorithm 1's literal ``beta *= scale``; see
        :class:`tfrec.losses.MarginInfoNCE`).
      in_batch_rate: N4 sampling rate.
      copr_weight / copr_reg_weight / copr_chunk_size / copr_relax_units / rethink_weight /
        rethink_distill_weight: the ``copr`` and ``rethink`` variants' losses (``tfrec.models.preranking.baselines``).
    """

    family = "preranking"

    def __init__(self, tasks: Sequence[str] = ("click", "purchase", "diversity"), variant: str = "hccp",
                 hash_bins: int = 20000, embedding_dim: int = 16, embedding_l2: float = 0.0, num_experts: int = 8,
                 expert_units: Sequence[int] = (64,), item_units: Sequence[int] = (64,),
                 cross_units: Sequence[int] = (32,), output_dim: int = 32, global_weight: float = 0.05,
                 task_weights: Sequence[float] = (0.98, 0.2, 0.1), alpha: float = 0.05, neg_weight: float = 0.5,
                 margin: float = 0.9, temperature: float = 0.1, beta_init: float = 9999.0,
                 beta_scale: float = 0.999, in_batch_rate: float = 0.05, beta_final: Optional[float] = None,
                 copr_weight: float = 1.0, copr_reg_weight: float = 0.1, copr_chunk_size: int = 1,
                 copr_relax_units: Sequence[int] = (16,), rethink_weight: float = 1.0,
                 rethink_distill_weight: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.tasks = [str(t) for t in tasks]
        if not self.tasks or GLOBAL in self.tasks or len(set(self.tasks)) != len(self.tasks):
            raise ValueError(f"`tasks` must be distinct names other than {GLOBAL!r}. Received: tasks={list(tasks)}")
        self.task_weights = [float(w) for w in task_weights]
        if len(self.task_weights) != len(self.tasks):
            raise ValueError(f"`task_weights` needs one weight per task {self.tasks}. Received: {list(task_weights)}")
        self.variant = str(variant)
        self.switches = switches(self.variant)
        if not 0.0 <= float(in_batch_rate) <= 1.0:
            raise ValueError(f"`in_batch_rate` must be in [0, 1]. Received: in_batch_rate={in_batch_rate}")
        self.hash_bins, self.embedding_dim, self.embedding_l2 = int(hash_bins), int(embedding_dim), float(embedding_l2)
        self.num_experts, self.expert_units = int(num_experts), [int(u) for u in expert_units]
        self.item_units, self.cross_units = [int(u) for u in item_units], [int(u) for u in cross_units]
        self.output_dim = int(output_dim)
        self.global_weight, self.alpha, self.neg_weight = float(global_weight), float(alpha), float(neg_weight)
        self.margin, self.temperature = float(margin), float(temperature)
        self.beta_init, self.beta_scale, self.in_batch_rate = float(beta_init), float(beta_scale), float(in_batch_rate)
        self.beta_final = None if beta_final is None else float(beta_final)
        self.copr_weight, self.copr_reg_weight = float(copr_weight), float(copr_reg_weight)
        self.copr_chunk_size, self.copr_relax_units = int(copr_chunk_size), [int(u) for u in copr_relax_units]
        self.rethink_weight, self.rethink_distill_weight = float(rethink_weight), float(rethink_distill_weight)
        if self.switches.rethink and baselines.EXPOSURE in self.tasks:
            raise ValueError(f"`tasks` must not name {baselines.EXPOSURE!r} in the rethink variant (its own task)")
        # The global consistency task is a task of the MMoE (HCCP 4.4.3) that only the variants with Eq. 3 have;
        # Rethink's exposure task likewise.
        self.all_tasks = ([GLOBAL] if self.switches.global_consistency else []) + (
            [baselines.EXPOSURE] if self.switches.rethink else []) + self.tasks
        self.relaxation = (baselines.RelaxationNet(self.copr_relax_units, name="relaxation_net")
                           if self.switches.copr else None)
        emb = (self.hash_bins, self.embedding_dim, self.embedding_l2)
        self.user_tower = UserTower(self.all_tasks, *emb, self.num_experts, self.expert_units, self.output_dim,
                                    name="user_tower")
        self.item_tower = ItemTower(*emb, self.item_units, self.output_dim, name="item_tower")
        self.cross_tower = CrossTower(len(self.all_tasks), *emb, self.cross_units, name="cross_tower")
        # The losses of Eq. 5 and 4.1.4 (validated by their own constructors).
        self.score_nce = InfoNCE(temperature=self.temperature, logit_key="logit")
        if self.switches.dot_loss == "margin_info_nce":
            self.dot_nce = MarginInfoNCE(margin=self.margin, temperature=self.temperature, beta_init=self.beta_init,
                                         scale=self.beta_scale, beta_final=self.beta_final)
        else:
            self.dot_nce = InfoNCE(temperature=self.temperature, logit_key="logit")
        self.task_auc = {t: keras.metrics.AUC(num_thresholds=10000, name=f"{t}_auc") for t in self.tasks}
        self._sample_in_batch = False
        self._step_beta = None  # set while tracing train_step (on_train_step_end)

    # ------------------------------------------------------------------------------------------ towers and scores

    def user_embedding(self, context: Mapping[str, tf.Tensor], training=None) -> Dict[str, tf.Tensor]:
        """``{task: [B, output_dim]}`` user embeddings (the global task's too, where the variant has Eq. 3) from the
        context features."""
        return self.user_tower(context, training=training)

    def item_embedding(self, items: Mapping[str, tf.Tensor], training=None) -> tf.Tensor:
        """Item embeddings ``S + [output_dim]`` from ``item_id``, ``category`` (strings) and ``price`` of shape S."""
        return self.item_tower(items, training=training)

    def score(self, context: Mapping[str, tf.Tensor], items: Mapping[str, tf.Tensor], training=None,
              user: Optional[Dict[str, tf.Tensor]] = None,
              item_emb: Optional[tf.Tensor] = None) -> Dict[str, tf.Tensor]:
        """``{"dot_<t>", "cross_<t>", "logit_<t>", "<t>"}`` ``[B, L]`` for every task (module docstring formula);
        precomputed ``user`` / ``item_emb`` are used when given."""
        user = self.user_embedding(context, training) if user is None else user
        item_emb = self.item_embedding(items, training) if item_emb is None else item_emb
        cross = self.cross_tower(context, items, training=training)
        out = {}
        for k, t in enumerate(self.all_tasks):
            dot = tf.einsum("bd,bld->bl", user[t], item_emb)
            logit = 2.0 * tf.sigmoid(cross[..., k]) * dot
            out.update({f"dot_{t}": dot, f"cross_{t}": cross[..., k], f"logit_{t}": logit, t: tf.sigmoid(logit)})
        return out

    def call(self, features, training=None):
        context = {f: features[f] for f in CONTEXT + HISTORY}
        items = {f: features[f] for f in ("item_id", "category", "price")}
        user = self.user_embedding(context, training)
        item_emb = self.item_embedding(items, training)
        out = self.score(context, items, training, user=user, item_emb=item_emb)
        out["item_embedding"], out["item_norm"] = item_emb, tf.norm(item_emb, axis=-1)
        out["item_key"] = negatives.item_keys(items["item_id"])
        for t in self.all_tasks:
            out[f"user_{t}"], out[f"user_norm_{t}"] = user[t], tf.norm(user[t], axis=-1)
        first = self.tasks[0]
        out["logit"], out["probability"] = out[f"logit_{first}"], out[first]
        if self.relaxation is not None:
            out["relaxation"] = self.relaxation(tf.stop_gradient(item_emb), tf.stop_gradient(user[first]))
        return out

    # ------------------------------------------------------------------------------------------ loss

    def loss_components(self):
        s = self.switches
        names = [f"cali_{t}" for t in self.tasks]
        if s.local != "none":
            names += [f"local_{t}" for t in self.tasks]
        if s.global_consistency:
            names.append("global")
        if s.score_info_nce:
            names += [f"infonce_{t}" for t in self.tasks]
        if s.dot_loss != "none":
            names += [f"margin_infonce_{t}" for t in self.tasks]
        return names + list(baselines.component_names(s, self.tasks[0]))

    def task_loss_terms(self, y, y_pred, sample_weight=None):
        """``(loss, {component: term})`` of one replica's batch: Eq. 6 with the variant's terms."""
        s = self.switches
        valid = tf.cast(y["example_mask"], tf.bool)
        st = tf.cast(y["sample_type"], tf.int32)
        impressions = tf.logical_and(valid, tf.equal(st, SAMPLE_N1))
        hard = tf.logical_and(valid, tf.logical_or(tf.equal(st, SAMPLE_N2), tf.equal(st, SAMPLE_N3)))
        easy = tf.logical_and(valid, tf.equal(st, SAMPLE_N5))
        selection = None
        if s.uses_in_batch and self._sample_in_batch and self.in_batch_rate > 0:
            selection = negatives.select_in_batch(st, y_pred["item_key"], valid, self.in_batch_rate)
        terms: Dict[str, tf.Tensor] = {}
        total = tf.constant(0.0)
        if s.global_consistency:
            ranks = tf.where(valid, tf.cast(y["rc_position"], tf.int32), -1)
            terms["global"] = list_mle(y_pred[f"logit_{GLOBAL}"], ranks)
            total += self.global_weight * terms["global"]
        for t, weight in zip(self.tasks, self.task_weights):
            labels = tf.cast(y[t], tf.float32)
            logit = y_pred[f"logit_{t}"]
            task = terms[f"cali_{t}"] = impression_bce(labels, logit, impressions)
            if s.local == "list_mle":
                ranks = tf.where(valid, tf.cast(y[f"rt_{t}_position"], tf.int32), -1)
                terms[f"local_{t}"] = list_mle(logit, ranks)
            elif s.local == "list_net":
                terms[f"local_{t}"] = list_net_impressions(labels, logit, impressions)
            if s.local != "none":
                task += self.alpha * terms[f"local_{t}"]
            positives = tf.logical_and(impressions, labels > 0.5)
            contrastive = []
            if s.score_info_nce:
                roles = self._roles(positives, hard, tf.zeros_like(easy))
                terms[f"infonce_{t}"] = self.score_nce.compute(roles, {"logit": logit})
                contrastive.append(terms[f"infonce_{t}"])
            if s.dot_loss != "none":
                roles = self._roles(positives, hard if s.hard_negatives else tf.zeros_like(hard),
                                    easy if s.easy_negatives else tf.zeros_like(easy))
                dots, item_norm = y_pred[f"dot_{t}"], y_pred["item_norm"]
                if selection is not None:
                    n4, n4_norm, n4_mask, _ = negatives.in_batch_negatives(
                        y_pred[f"user_{t}"], y_pred["item_embedding"], st, y_pred["item_key"], valid,
                        self.in_batch_rate, selection=selection)
                    dots, item_norm = tf.concat([dots, n4], 1), tf.concat([item_norm, n4_norm], 1)
                    roles = tf.concat([roles, tf.where(n4_mask, EASY_NEGATIVE, 0)], 1)
                terms[f"margin_infonce_{t}"] = self.dot_nce.compute(
                    roles, {"logit": dots, "user_norm": y_pred[f"user_norm_{t}"], "item_norm": item_norm})
                contrastive.append(terms[f"margin_infonce_{t}"])
            if contrastive:
                task += self.neg_weight * tf.add_n(contrastive) / float(len(contrastive))
            total += weight * task
        extra, extra_terms = baselines.baseline_terms(self, y, y_pred, valid)
        terms.update(extra_terms)
        return total + extra, terms

    @staticmethod
    def _roles(positives, hard, easy) -> tf.Tensor:
        """``[B, L]`` int32 roles of :mod:`tfrec.losses.classes.preranking` (0 = not in the loss)."""
        zero = tf.zeros_like(positives, tf.int32)
        return tf.where(positives, POSITIVE, tf.where(hard, HARD_NEGATIVE, tf.where(easy, EASY_NEGATIVE, zero)))

    def loss_count(self, y) -> tf.Tensor:
        return tf.cast(tf.shape(y["example_mask"])[0], tf.float32)  # the replica's requests (Eq. 1-5's |U|)

    # ------------------------------------------------------------------------------------------ fit plumbing

    def compile(self, optimizer="rmsprop", loss=None, **kwargs):
        """Keras' ``compile`` with the model's own loss (``loss`` must be None); one tracker per component and the
        Margin InfoNCE ``beta`` created under the strategy (tracked, so checkpoints carry it)."""
        if loss is not None:
            raise ValueError(f"ThreeTower computes its own loss (task_loss_terms); compile it with loss=None. "
                             f"Received: loss={loss!r}")
        super().compile(optimizer=optimizer, loss=None, **kwargs)
        with self.distribute_strategy.scope():
            self._component_trackers = {c: keras.metrics.Mean(name=f"{c}_loss") for c in self.loss_components()}
            if isinstance(self.dot_nce, MarginInfoNCE):
                self.dot_nce.create_state()
                self.loss_state = self.dot_nce.state()

    def on_train_step_end(self) -> None:
        if isinstance(self.dot_nce, MarginInfoNCE):
            # Algorithm 1, line 5: beta *= scale, once per step; the new value is logged by train_step.
            self._step_beta = self.dot_nce.on_train_step_end()

    # The train / test steps hold no Python control flow on tensors: autograph's conversion of the whole step
    # (towers, four tasks' losses) costs minutes of tracing on CPU and is skipped.
    @tf.autograph.experimental.do_not_convert
    def train_step(self, data):
        self._sample_in_batch = True  # read while tracing: N4 in the training loss only
        try:
            logs = super().train_step(data)
        finally:
            self._sample_in_batch = False
        if isinstance(self.dot_nce, MarginInfoNCE):  # Algorithm 1's beta after the step: history, TensorBoard
            logs = {**logs, "beta": self._step_beta}
        return logs

    @tf.autograph.experimental.do_not_convert
    def test_step(self, data):
        return super().test_step(data)

    @tf.autograph.experimental.do_not_convert
    def predict_step(self, data):
        return super().predict_step(data)

    @property
    def metrics(self):
        return [self.loss_tracker, self.regularization_tracker, self.total_loss_tracker,
                *getattr(self, "_component_trackers", {}).values(), *self.task_auc.values(), self.auc_metric]

    def compute_metrics(self, x, y, y_pred, sample_weight):
        """AUC per task on the impressions (``auc`` is the first task's)."""
        impressions = tf.logical_and(tf.cast(y["example_mask"], tf.bool),
                                     tf.equal(tf.cast(y["sample_type"], tf.int32), SAMPLE_N1))
        for k, (t, metric) in enumerate(self.task_auc.items()):
            labels = tf.boolean_mask(tf.cast(y[t], tf.float32), impressions)
            p = tf.boolean_mask(y_pred[t], impressions)
            metric.update_state(labels, p)
            if k == 0:
                self.auc_metric.update_state(labels, p)
        return {m.name: m.result() for m in self.metrics}

    # ------------------------------------------------------------------------------------------ serving

    def serving_functions(self) -> ServingFunctions:
        """The parse and score functions of the serving signatures (:mod:`tfrec.models.preranking.serving`)."""
        return ServingFunctions(self)

    def extra_serving_signatures(self):
        """``user_embedding``, ``item_embedding``, ``score_candidates`` (``export.signatures``' extension point)."""
        return self.serving_functions().signatures()

    # ------------------------------------------------------------------------------------------ config

    def input_signature(self):
        spec = {f: tf.TensorSpec([None], tf.string, name=f) for f in CONTEXT}
        spec.update({f: tf.TensorSpec([None, None], tf.string, name=f) for f in HISTORY})
        spec.update({"item_id": tf.TensorSpec([None, None], tf.string, name="item_id"),
                     "category": tf.TensorSpec([None, None], tf.string, name="category"),
                     "price": tf.TensorSpec([None, None], tf.float32, name="price")})
        return spec

    def dummy_inputs(self) -> Dict[str, tf.Tensor]:
        """A one-request, one-item input that builds every weight."""
        x = {f: tf.constant([""]) for f in CONTEXT}
        x.update({f: tf.constant([["x"]]) for f in HISTORY})
        x.update({"item_id": tf.constant([["x"]]), "category": tf.constant([["x"]]), "price": tf.constant([[1.0]])})
        return x

    def build_from_config(self, config):
        self(self.dummy_inputs(), training=False)

    def get_config(self):
        return {"tasks": list(self.tasks), "variant": self.variant, "hash_bins": self.hash_bins,
                "embedding_dim": self.embedding_dim, "embedding_l2": self.embedding_l2,
                "num_experts": self.num_experts, "expert_units": self.expert_units, "item_units": self.item_units,
                "cross_units": self.cross_units, "output_dim": self.output_dim, "global_weight": self.global_weight,
                "task_weights": self.task_weights, "alpha": self.alpha, "neg_weight": self.neg_weight,
                "margin": self.margin, "temperature": self.temperature, "beta_init": self.beta_init,
                "beta_scale": self.beta_scale, "beta_final": self.beta_final, "in_batch_rate": self.in_batch_rate,
                "copr_weight": self.copr_weight, "copr_reg_weight": self.copr_reg_weight,
                "copr_chunk_size": self.copr_chunk_size, "copr_relax_units": self.copr_relax_units,
                "rethink_weight": self.rethink_weight, "rethink_distill_weight": self.rethink_distill_weight,
                "name": self.name}
