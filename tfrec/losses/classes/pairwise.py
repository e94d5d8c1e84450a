"""Pairwise losses (RankNet, Combined-Pair, PWiseR) as Keras ``Loss`` classes (the math:
:mod:`tfrec.losses.pairwise`).

Pairs are formed inside a batch; ``pairing`` says which batch under a distribution strategy (the replica's slice,
or the global batch all-gathered; see :mod:`tfrec.losses.distributed`). The tensors are gathered first and every
term, the BCE part of a combined loss included, is computed on what was gathered.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import tensorflow as tf

import tfrec.losses.distributed as distributed

import tfrec.losses.pairwise as pairwise

import tfrec.losses.pointwise as pointwise
from tfrec.losses.base import Loss, logits_of, register


def _check_unit(name: str, value: float) -> float:
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"`{name}` must be in [0, 1]. Received: {name}={value}")
    return float(value)


def _flat_inputs(y_true, y_pred, sample_weight, label_columns: int = 1):
    logits = logits_of(y_pred)
    shape = [-1] if label_columns == 1 else [-1, label_columns]
    labels = tf.reshape(tf.cast(y_true, logits.dtype), shape)
    weights = None if sample_weight is None else tf.reshape(tf.cast(sample_weight, logits.dtype), [-1])
    return labels, logits, weights


class _PairwiseLoss(Loss):
    """Shared arguments of the pairwise losses: ``pairing`` and ``max_pairs_per_chunk``."""

    def __init__(self, pairing: str = "replica",
                 max_pairs_per_chunk: int = pairwise.DEFAULT_MAX_PAIRS_PER_CHUNK, name: Optional[str] = None):
        super().__init__(name=name)
        self.pairing = distributed.check_pairing(pairing)
        self.max_pairs_per_chunk = pairwise.check_max_pairs_per_chunk(max_pairs_per_chunk)

    def get_config(self) -> Dict[str, Any]:
        return {**super().get_config(), "pairing": self.pairing, "max_pairs_per_chunk": self.max_pairs_per_chunk}


@register("rank_net")
class RankNet(_PairwiseLoss):
    """RankNet over all positive x negative pairs of the batch (KDD 2024 Eq. 9); see
    :func:`tfrec.losses.pairwise.rank_net`. Pairs are unweighted (``sample_weight`` is not used).

    Args:
      pairing: ``"replica"`` (pairs within each replica's slice) or ``"global"`` (pairs over the global batch).
      max_pairs_per_chunk: pairs per block of the memory-bounded pair loop (the result does not depend on it).
      name: loss name.
    """

    def compute(self, y_true, y_pred, sample_weight=None):
        labels, logits, _ = _flat_inputs(y_true, y_pred, None)
        labels, logits = distributed.gather([labels, logits], self.pairing)
        return pairwise.rank_net(labels, logits, self.max_pairs_per_chunk)


@register("combined_pair")
class CombinedPair(_PairwiseLoss):
    """Combined-Pair, KDD 2024 Eq. 8: ``alpha * BCE + (1 - alpha) * RankNet``.

    BCE is :func:`tfrec.losses.pointwise.weighted_bce` (Eq. 15: ``sample_weight`` multiplies the positive term,
    mean over N) and RankNet is :func:`tfrec.losses.pairwise.rank_net` (Eq. 9, mean over the N+ N- pairs), both
    on the batch that ``pairing`` selects. Reports the unscaled terms as components ``bce`` and ``rank_net``.

    Args:
      alpha: weight of BCE, in [0, 1] (the paper's default 0.5).
      pairing: ``"replica"`` or ``"global"``.
      max_pairs_per_chunk: pairs per block of the pair loop.
      name: loss name.
    """

    components = ("bce", "rank_net")

    def __init__(self, alpha: float = 0.5, pairing: str = "replica",
                 max_pairs_per_chunk: int = pairwise.DEFAULT_MAX_PAIRS_PER_CHUNK, name: Optional[str] = None):
        super().__init__(pairing=pairing, max_pairs_per_chunk=max_pairs_per_chunk, name=name)
        self.alpha = _check_unit("alpha", alpha)

    def compute_terms(self, y_true, y_pred, sample_weight=None) -> Tuple[tf.Tensor, Dict[str, tf.Tensor]]:
        labels, logits, weights = _flat_inputs(y_true, y_pred, sample_weight)
        labels, logits, weights = distributed.gather([labels, logits, weights], self.pairing)
        bce = pointwise.weighted_bce(labels, logits, weights)
        rank = pairwise.rank_net(labels, logits, self.max_pairs_per_chunk)
        return self.alpha * bce + (1.0 - self.alpha) * rank, {"bce": bce, "rank_net": rank}

    def get_config(self) -> Dict[str, Any]:
        return {**super().get_config(), "alpha": self.alpha}


@register("pwiser")
class PWiseR(_PairwiseLoss):
    """PWiseR (Durmus et al. 2024): ``BCE(task label) + lam * (term1 + term2)``; see
    :func:`tfrec.losses.pairwise.pwiser_terms` for tfrec's reading of the two margin terms (hinges on the
    task's predicted probability, or logit with ``space="logit"``, averaged over the conversion x click-only and
    conversion x no-click pairs of the batch).

    ``y_true`` is ``[batch, 2]`` = (click, conversion); ``y_pred`` holds the logits of the task being trained
    (``task``: its BCE reads the click or the conversion column). ``sample_weight`` multiplies the positive BCE
    term (Eq. 15 convention). Reports the unscaled terms as components ``bce``, ``pwiser_click_only`` and
    ``pwiser_no_click``.

    Args:
      task: ``"click"`` (CTR) or ``"conversion"`` (CVR): the label of the BCE term.
      lam: weight of the pairwise terms, >= 0.
      m1: margin of conversions over click-only samples, >= 0.
      m2: margin of conversions over no-click samples, >= 0.
      space: ``"probability"`` (default) or ``"logit"``: the scores the margins apply to.
      pairing: ``"replica"`` or ``"global"``.
      max_pairs_per_chunk: pairs per block of the pair loop.
      name: loss name.
    """

    components = ("bce", "pwiser_click_only", "pwiser_no_click")

    def __init__(self, task: str = "click", lam: float = 0.1, m1: float = 0.1, m2: float = 0.2,
                 space: str = "probability", pairing: str = "replica",
                 max_pairs_per_chunk: int = pairwise.DEFAULT_MAX_PAIRS_PER_CHUNK, name: Optional[str] = None):
        super().__init__(pairing=pairing, max_pairs_per_chunk=max_pairs_per_chunk, name=name)
        if task not in ("click", "conversion"):
            raise ValueError(f"`task` must be 'click' or 'conversion'. Received: task={task!r}")
        if not float(lam) >= 0.0:
            raise ValueError(f"`lam` must be >= 0. Received: lam={lam}")
        self.task = task
        self.lam = float(lam)
        self.m1 = pairwise.check_margin("m1", m1)
        self.m2 = pairwise.check_margin("m2", m2)
        self.space = pairwise.check_space(space)

    @staticmethod
    def _check_labels(y_true) -> tf.Tensor:
        y_true = tf.convert_to_tensor(y_true)
        if y_true.shape.rank is not None and (y_true.shape.rank != 2 or y_true.shape[-1] not in (None, 2)):
            raise ValueError(f"pwiser needs y_true of shape [batch, 2] = (click, conversion). "
                             f"Received: shape {y_true.shape}")
        return y_true

    def pair_terms(self, y_true, y_pred) -> Tuple[tf.Tensor, tf.Tensor]:
        """``(term1, term2)`` of :func:`tfrec.losses.pairwise.pwiser_terms` (``m1``, ``m2``, ``space``) on the
        batch that ``pairing`` selects: PWiseR without its BCE and without ``lam``, for a model that computes its
        own BCE terms (the multi-task models, :meth:`tfrec.models.MultiTaskModel.task_loss_terms`). ``y_true`` is
        ``[batch, 2]`` = (click, conversion), a row with a negative label is padding; ``y_pred`` the logits of
        the task whose scores are paired."""
        labels, logits, _ = _flat_inputs(self._check_labels(y_true), y_pred, None, label_columns=2)
        clicks, conversions, logits = distributed.gather([labels[:, 0], labels[:, 1], logits], self.pairing)
        return pairwise.pwiser_terms(clicks, conversions, logits, self.m1, self.m2, self.space,
                                     self.max_pairs_per_chunk)

    def compute_terms(self, y_true, y_pred, sample_weight=None) -> Tuple[tf.Tensor, Dict[str, tf.Tensor]]:
        labels, logits, weights = _flat_inputs(self._check_labels(y_true), y_pred, sample_weight, label_columns=2)
        # Gathered as [batch] columns: the gradient of a joint all_gather fails on tensors of different ranks.
        clicks, conversions, logits, weights = distributed.gather(
            [labels[:, 0], labels[:, 1], logits, weights], self.pairing)
        total, (bce, term1, term2) = pairwise.pwiser_loss(
            clicks, conversions, logits, self.task, weights, self.lam, self.m1, self.m2, self.space,
            self.max_pairs_per_chunk)
        return total, {"bce": bce, "pwiser_click_only": term1, "pwiser_no_click": term2}

    def get_config(self) -> Dict[str, Any]:
        return {**super().get_config(), "task": self.task, "lam": self.lam, "m1": self.m1, "m2": self.m2,
                "space": self.space}
