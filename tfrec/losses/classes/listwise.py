"""List-wise losses (ListNet, Combined-List, ListCE, RCR, JRC) as Keras ``Loss`` classes (the math:
:mod:`tfrec.losses.listwise`).

The list is the batch; ``pairing`` says which batch under a distribution strategy (the replica's slice, or the
global batch all-gathered; see :mod:`tfrec.losses.distributed`). The tensors are gathered first and every term,
the BCE part of a combined loss included, is computed on what was gathered. ``sample_weight`` (the dataset's
``weight`` feature, beta_pos on positives) weights positives in the softmax denominators and in the average over
positives (see :func:`tfrec.losses.listwise.list_net`), and multiplies the positive BCE term (Eq. 15).
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Tuple

import tensorflow as tf

import tfrec.losses.distributed as distributed

import tfrec.losses.listwise as listwise

import tfrec.losses.pointwise as pointwise
from tfrec.losses.base import Loss, logits_of, register


def check_alpha(alpha: float) -> float:
    """Validates an ``alpha`` argument (in [0, 1]); returns it as a float."""
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"`alpha` must be in [0, 1]. Received: alpha={alpha}")
    return float(alpha)


def _gathered_inputs(y_true, y_pred, sample_weight, pairing: str):
    """``(labels, logits, weights)`` flattened to ``[batch]`` and gathered as ``pairing`` says."""
    logits = logits_of(y_pred)
    labels = tf.reshape(tf.cast(y_true, logits.dtype), [-1])
    weights = None if sample_weight is None else tf.reshape(tf.cast(sample_weight, logits.dtype), [-1])
    return distributed.gather([labels, logits, weights], pairing)


class _ListLoss(Loss):
    """Shared argument of the list-wise losses: ``pairing``."""

    def __init__(self, pairing: str = "replica", name: Optional[str] = None):
        super().__init__(name=name)
        self.pairing = distributed.check_pairing(pairing)

    def get_config(self) -> Dict[str, Any]:
        return {**super().get_config(), "pairing": self.pairing}


class _CombinedListLoss(_ListLoss):
    """``alpha * BCE + (1 - alpha) * rank`` with ``alpha`` in [0, 1]; ``components[1]`` names the rank term and
    ``rank_fn`` computes it."""

    rank_fn = None  # listwise.list_net or listwise.list_ce (a staticmethod in subclasses)

    def __init__(self, alpha: float = 0.5, pairing: str = "replica", name: Optional[str] = None):
        super().__init__(pairing=pairing, name=name)
        self.alpha = check_alpha(alpha)

    def compute_terms(self, y_true, y_pred, sample_weight=None) -> Tuple[tf.Tensor, Dict[str, tf.Tensor]]:
        labels, logits, weights = _gathered_inputs(y_true, y_pred, sample_weight, self.pairing)
        bce = pointwise.weighted_bce(labels, logits, weights)
        rank = self.rank_fn(labels, logits, weights)
        return self.alpha * bce + (1.0 - self.alpha) * rank, {"bce": bce, self.components[1]: rank}

    def get_config(self) -> Dict[str, Any]:
        return {**super().get_config(), "alpha": self.alpha}


@register("list_net")
class ListNet(_ListLoss):
    """ListNet over the batch (KDD 2024 Eq. 3); see :func:`tfrec.losses.listwise.list_net`.

    Args:
      pairing: ``"replica"`` (the list is the replica's slice) or ``"global"`` (the global batch).
      name: loss name.
    """

    def compute(self, y_true, y_pred, sample_weight=None):
        labels, logits, weights = _gathered_inputs(y_true, y_pred, sample_weight, self.pairing)
        return listwise.list_net(labels, logits, weights)


@register("combined_list")
class CombinedList(_CombinedListLoss):
    """Combined-List (KDD 2024 Eq. 4 with Eq. 3): ``alpha * BCE + (1 - alpha) * ListNet``.

    BCE is :func:`tfrec.losses.pointwise.weighted_bce` (Eq. 15) and ListNet :func:`tfrec.losses.listwise.list_net`,
    both on the batch that ``pairing`` selects. Reports the unscaled terms as components ``bce`` and ``list_net``.

    Args:
      alpha: weight of BCE, in [0, 1].
      pairing: ``"replica"`` or ``"global"``.
      name: loss name.
    """

    components = ("bce", "list_net")
    rank_fn = staticmethod(listwise.list_net)


@register("list_ce")
class ListCE(_ListLoss):
    """ListCE, the rank term of RCR (KDD 2024 Eq. 5); see :func:`tfrec.losses.listwise.list_ce`.

    Args:
      pairing: ``"replica"`` or ``"global"``.
      name: loss name.
    """

    def compute(self, y_true, y_pred, sample_weight=None):
        labels, logits, weights = _gathered_inputs(y_true, y_pred, sample_weight, self.pairing)
        return listwise.list_ce(labels, logits, weights)


@register("rcr")
class RCR(_CombinedListLoss):
    """RCR (KDD 2024 Eq. 4 with Eq. 5): ``alpha * BCE + (1 - alpha) * ListCE``.

    BCE is :func:`tfrec.losses.pointwise.weighted_bce` (Eq. 15) and ListCE :func:`tfrec.losses.listwise.list_ce`,
    both on the batch that ``pairing`` selects. Reports the unscaled terms as components ``bce`` and ``list_ce``.

    Args:
      alpha: weight of BCE, in [0, 1].
      pairing: ``"replica"`` or ``"global"``.
      name: loss name.
    """

    components = ("bce", "list_ce")
    rank_fn = staticmethod(listwise.list_ce)


def _two_logits(y_pred: Any) -> tf.Tensor:
    """The ``[batch, 2]`` (non-click, click) logits: ``y_pred["logits"]`` or ``y_pred`` itself."""
    if isinstance(y_pred, Mapping):
        if "logits" not in y_pred:
            raise ValueError(f"JRC needs the model output 'logits' [batch, 2] (DCN V2 with head='jrc'); "
                             f"the model output has {sorted(y_pred)}")
        y_pred = y_pred["logits"]
    return listwise.check_logits2(y_pred)


@register("jrc")
class JRC(_CombinedListLoss):
    """JRC (KDD 2024 Eq. 4, 6, 7): ``alpha * L_clf + (1 - alpha) * L_rank`` on two logits per sample; see
    :func:`tfrec.losses.listwise.jrc_terms` (weighting: ``sample_weight`` multiplies each sample's term, both
    terms divide by N; positives count with their weight in the Eq. 7 denominator).

    Reads ``y_pred["logits"]`` ``[batch, 2]`` = (non-click, click) (DCN V2 with ``head="jrc"``). Reports the
    unscaled terms as components ``jrc_clf`` and ``jrc_rank``.

    Args:
      alpha: weight of the classification (calibration) term, in [0, 1].
      pairing: ``"replica"`` or ``"global"``.
      name: loss name.
    """

    components = ("jrc_clf", "jrc_rank")

    def compute_terms(self, y_true, y_pred, sample_weight=None) -> Tuple[tf.Tensor, Dict[str, tf.Tensor]]:
        logits2 = _two_logits(y_pred)
        labels = tf.reshape(tf.cast(y_true, logits2.dtype), [-1])
        weights = None if sample_weight is None else tf.reshape(tf.cast(sample_weight, logits2.dtype), [-1])
        labels, logits2, weights = distributed.gather([labels, logits2, weights], self.pairing)
        clf, rank = listwise.jrc_terms(labels, logits2, weights)
        return self.alpha * clf + (1.0 - self.alpha) * rank, {"jrc_clf": clf, "jrc_rank": rank}
