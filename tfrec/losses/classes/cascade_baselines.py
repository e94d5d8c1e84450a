"""The COPR and Rethink (ASMOL) losses of HCCP's Table 2 as Keras ``Loss`` classes (math and readings:
:mod:`tfrec.losses.cascade_baselines`).

One request per row of a ``[B, K]`` layout; each loss divides its sum over rows by the replica's ``B`` (exact
under a distribution strategy, as the HCCP losses of :mod:`tfrec.losses.classes.preranking`). ``y_pred`` is the
scores ``[B, K]`` or the model's output dict, read at ``score_key``. None takes a ``sample_weight``.

* :class:`COPRPairwise` (``copr_pairwise``, Eq. B2): ``y_true`` = ranking orders ``[B, K]`` (1-based; ``< 1``
  for non-candidates and padding).
* :class:`RethinkListwise` (``rethink_listwise``, Eq. B4): ``y_true`` = labels ``[B, K]`` (1 / 0; ``< 0``
  padding).
* :class:`RankerDistillation` (``ranker_distillation``, Eq. B5): ``y_true`` = the ranker's probabilities ``[B, K]``
  on the items to distil (``< 0`` elsewhere).
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import tensorflow as tf

import tfrec.losses.cascade_baselines as cascade_baselines
from tfrec.losses.base import Loss, register
from tfrec.losses.classes.preranking import _list_tensor, _output


def _check_key(score_key: str) -> str:
    if not isinstance(score_key, str) or not score_key:
        raise ValueError(f"`score_key` must be a non-empty string. Received: score_key={score_key!r}")
    return score_key


class _ListLoss(Loss):
    def __init__(self, score_key: str = "logit", name: Optional[str] = None):
        super().__init__(name=name)
        self.score_key = _check_key(score_key)

    def _inputs(self, y_true, y_pred, sample_weight):
        if sample_weight is not None:
            raise ValueError(f"{type(self).__name__} takes no sample_weight; y_true selects what enters the loss")
        scores = _list_tensor(_output(y_pred, self.score_key), f"y_pred[{self.score_key!r}]")
        return _list_tensor(tf.convert_to_tensor(y_true), "y_true"), scores

    def get_config(self) -> Dict[str, Any]:
        return {**super().get_config(), "score_key": self.score_key}


@register("copr_pairwise")
class COPRPairwise(_ListLoss):
    """COPR's Delta-NDCG-weighted pairwise consistency loss over ranking-order chunks (Eq. B2 of
    :mod:`tfrec.losses.cascade_baselines`).

    Args:
      chunk_size: consecutive ranks per chunk (>= 1).
      score_key: the key of the ``[B, K]`` scores in the model's output dict.
      name: loss name.
    """

    def __init__(self, chunk_size: int = 1, score_key: str = "logit", name: Optional[str] = None):
        super().__init__(score_key=score_key, name=name)
        if isinstance(chunk_size, bool) or int(chunk_size) != chunk_size or int(chunk_size) < 1:
            raise ValueError(f"`chunk_size` must be an integer >= 1. Received: chunk_size={chunk_size}")
        self.chunk_size = int(chunk_size)

    def compute(self, y_true, y_pred, sample_weight=None):
        ranks, scores = self._inputs(y_true, y_pred, sample_weight)
        return cascade_baselines.copr_pairwise(scores, ranks, self.chunk_size)

    def get_config(self) -> Dict[str, Any]:
        return {**super().get_config(), "chunk_size": self.chunk_size}


@register("rethink_listwise")
class RethinkListwise(_ListLoss):
    """Rethink's (ASMOL's) list-wise softmax loss with several positives per list (Eq. B4).

    Args:
      score_key: the key of the ``[B, K]`` scores in the model's output dict.
      name: loss name.
    """

    def compute(self, y_true, y_pred, sample_weight=None):
        labels, scores = self._inputs(y_true, y_pred, sample_weight)
        return cascade_baselines.multi_positive_softmax(scores, labels)


@register("ranker_distillation")
class RankerDistillation(_ListLoss):
    """Rethink's distillation of the ranker's predicted CTR (Eq. B5): soft-label BCE where ``y_true >= 0``.

    Args:
      score_key: the key of the ``[B, K]`` logits in the model's output dict.
      name: loss name.
    """

    def compute(self, y_true, y_pred, sample_weight=None):
        teacher, scores = self._inputs(y_true, y_pred, sample_weight)
        teacher = tf.cast(teacher, scores.dtype)
        return cascade_baselines.ranker_distillation(scores, teacher, teacher >= 0)
