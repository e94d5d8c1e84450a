"""Point-wise losses as Keras ``Loss`` classes (the math: :mod:`tfrec.losses.pointwise`)."""

from __future__ import annotations

from typing import Any, Dict, Optional

import tensorflow as tf

import tfrec.losses.distributed as distributed

import tfrec.losses.pointwise as pointwise
from tfrec.losses.base import Loss, logits_of, register


@register("weighted_bce")
class WeightedBCE(Loss):
    """BCE with beta_pos positive weights (KDD 2024 Eq. 15); see :func:`tfrec.losses.pointwise.weighted_bce`.

    The positive weights come from ``sample_weight`` (the dataset's ``weight`` feature); ``beta_pos`` multiplies
    them, for data written without weights.

    Args:
      beta_pos: optional factor on positive samples, in (0, 1].
      name: loss name.
    """

    def __init__(self, beta_pos: Optional[float] = None, name: Optional[str] = None):
        super().__init__(name=name)
        if beta_pos is not None and not 0.0 < float(beta_pos) <= 1.0:
            raise ValueError(f"`beta_pos` must be in (0, 1]. Received: beta_pos={beta_pos}")
        self.beta_pos = None if beta_pos is None else float(beta_pos)

    def compute(self, y_true, y_pred, sample_weight=None):
        return pointwise.weighted_bce(y_true, logits_of(y_pred), sample_weight, self.beta_pos)

    def get_config(self) -> Dict[str, Any]:
        return {**super().get_config(), "beta_pos": self.beta_pos}


@register("focal")
class Focal(Loss):
    """Focal loss (KDD 2024 Eq. 16) with positive weights; see :func:`tfrec.losses.pointwise.focal`.

    ``sample_weight`` (the dataset's ``weight`` feature, beta_pos on positives) multiplies the positive term.

    Args:
      gamma: focusing parameter, >= 0 (0 is weighted BCE).
      name: loss name.
    """

    def __init__(self, gamma: float = 2.0, name: Optional[str] = None):
        super().__init__(name=name)
        self.gamma = pointwise.check_gamma(gamma)

    def compute(self, y_true, y_pred, sample_weight=None):
        return pointwise.focal(y_true, logits_of(y_pred), sample_weight, self.gamma)

    def get_config(self) -> Dict[str, Any]:
        return {**super().get_config(), "gamma": self.gamma}


@register("normalized_focal")
class NormalizedFocal(Loss):
    """The normalised focal loss Focal' (KDD 2024 Eq. 17, the paper code's focal loss); see
    :func:`tfrec.losses.pointwise.normalized_focal`.

    The negative weights are normalised over the batch's negatives (their mean is 1, as BCE's), so the loss is
    batch-normalised: ``pairing`` says which batch (see :mod:`tfrec.losses.distributed`).

    Args:
      gamma: focusing parameter, >= 0 (0 is weighted BCE).
      pairing: ``"replica"`` (normalise over the replica's slice) or ``"global"`` (all-gather the global batch).
      name: loss name.
    """

    def __init__(self, gamma: float = 2.0, pairing: str = "replica", name: Optional[str] = None):
        super().__init__(name=name)
        self.gamma = pointwise.check_gamma(gamma)
        self.pairing = distributed.check_pairing(pairing)

    def compute(self, y_true, y_pred, sample_weight=None):
        logits = logits_of(y_pred)
        labels = tf.reshape(tf.cast(y_true, logits.dtype), [-1])
        weights = None if sample_weight is None else tf.reshape(tf.cast(sample_weight, logits.dtype), [-1])
        labels, logits, weights = distributed.gather([labels, logits, weights], self.pairing)
        return pointwise.normalized_focal(labels, logits, weights, self.gamma)

    def get_config(self) -> Dict[str, Any]:
        return {**super().get_config(), "gamma": self.gamma, "pairing": self.pairing}
