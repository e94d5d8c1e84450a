"""Contrastive losses (supervised contrastive, Combined-Contrastive) as Keras ``Loss`` classes (the math:
:mod:`tfrec.losses.contrastive`).

They read the model's ``embedding`` output (DCN V2: the penultimate representation). The contrastive pairs are
formed inside a batch; ``pairing`` says which batch under a distribution strategy (see
:mod:`tfrec.losses.distributed`). The tensors are gathered first and every term, the BCE part of
Combined-Contrastive included, is computed on what was gathered.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Tuple

import tensorflow as tf

import tfrec.losses.contrastive as contrastive

import tfrec.losses.distributed as distributed

import tfrec.losses.pointwise as pointwise
from tfrec.losses.base import Loss, logits_of, register
from tfrec.losses.classes.listwise import check_alpha


def _embeddings_of(y_pred: Any) -> tf.Tensor:
    if not isinstance(y_pred, Mapping) or "embedding" not in y_pred:
        have = sorted(y_pred) if isinstance(y_pred, Mapping) else "a single tensor"
        raise ValueError(f"the contrastive losses need the model output 'embedding' [batch, d]; "
                         f"the model output has {have}")
    return tf.convert_to_tensor(y_pred["embedding"])


@register("supervised_contrastive")
class SupervisedContrastive(Loss):
    """Supervised contrastive loss on the model's embeddings (KDD 2024 Eq. 19); see
    :func:`tfrec.losses.contrastive.supervised_contrastive`. Unweighted (``sample_weight`` is not used).

    Args:
      temperature: ``tau`` > 0.
      normalize: L2-normalise the embeddings first (cosine similarities).
      pairing: ``"replica"`` (pairs within each replica's slice) or ``"global"`` (the global batch).
      name: loss name.
    """

    def __init__(self, temperature: float = 0.4, normalize: bool = True, pairing: str = "replica",
                 name: Optional[str] = None):
        super().__init__(name=name)
        self.temperature = contrastive.check_temperature(temperature)
        if not isinstance(normalize, bool):
            raise ValueError(f"`normalize` must be True or False. Received: normalize={normalize!r}")
        self.normalize = normalize
        self.pairing = distributed.check_pairing(pairing)

    def compute(self, y_true, y_pred, sample_weight=None):
        emb = _embeddings_of(y_pred)
        labels = tf.reshape(tf.cast(y_true, emb.dtype), [-1])
        labels, emb = distributed.gather([labels, emb], self.pairing)
        return contrastive.supervised_contrastive(labels, emb, self.temperature, self.normalize)

    def get_config(self) -> Dict[str, Any]:
        return {**super().get_config(), "temperature": self.temperature, "normalize": self.normalize,
                "pairing": self.pairing}


@register("combined_contrastive")
class CombinedContrastive(SupervisedContrastive):
    """Combined-Contrastive (KDD 2024 Eq. 18): ``alpha * BCE + (1 - alpha) * L_Contr``.

    BCE is :func:`tfrec.losses.pointwise.weighted_bce` on the ``logit`` output (Eq. 15: ``sample_weight``
    multiplies the positive term, mean over N) and ``L_Contr`` is
    :func:`tfrec.losses.contrastive.supervised_contrastive` on the ``embedding`` output (unweighted), both on the
    batch that ``pairing`` selects. Reports the unscaled terms as components ``bce`` and ``contrastive``. Defaults
    are the paper's: ``alpha = 0.9``, ``tau = 0.4``.

    Args:
      alpha: weight of BCE, in [0, 1].
      temperature: ``tau`` > 0.
      normalize: L2-normalise the embeddings first.
      pairing: ``"replica"`` or ``"global"``.
      name: loss name.
    """

    components = ("bce", "contrastive")

    def __init__(self, alpha: float = 0.9, temperature: float = 0.4, normalize: bool = True,
                 pairing: str = "replica", name: Optional[str] = None):
        super().__init__(temperature=temperature, normalize=normalize, pairing=pairing, name=name)
        self.alpha = check_alpha(alpha)

    def compute_terms(self, y_true, y_pred, sample_weight=None) -> Tuple[tf.Tensor, Dict[str, tf.Tensor]]:
        emb = _embeddings_of(y_pred)
        logits = tf.cast(logits_of(y_pred), emb.dtype)
        labels = tf.reshape(tf.cast(y_true, emb.dtype), [-1])
        weights = None if sample_weight is None else tf.reshape(tf.cast(sample_weight, emb.dtype), [-1])
        labels, logits, weights, emb = distributed.gather([labels, logits, weights, emb], self.pairing)
        bce = pointwise.weighted_bce(labels, logits, weights)
        contr = contrastive.supervised_contrastive(labels, emb, self.temperature, self.normalize)
        return self.alpha * bce + (1.0 - self.alpha) * contr, {"bce": bce, "contrastive": contr}

    def compute(self, y_true, y_pred, sample_weight=None):
        return self.compute_terms(y_true, y_pred, sample_weight)[0]

    def get_config(self) -> Dict[str, Any]:
        return {**super().get_config(), "alpha": self.alpha}
