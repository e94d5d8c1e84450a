"""Point-wise losses as Keras ``Loss`` classes (the math: :mod:`tfrec.losses.pointwise`)."""

from __future__ import annotations

from typing import Any, Dict, Optional

from tfrec.losses import pointwise
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
