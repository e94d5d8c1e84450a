"""The COPR and Rethink baselines of HCCP's Table 2 on the Three-Tower model (``model.variant`` ``copr`` /
``rethink``; losses and readings in :mod:`tfrec.losses.cascade_baselines`).

* ``copr``: Eq. 1's BCE (the CTR loss) plus ``copr_weight * L_pair + copr_reg_weight * L_reg`` (Eq. B1-B3) on the
  first task's logit. The relaxation net (:class:`RelaxationNet`) reads the item embedding and the task's user
  embedding, both with their gradient stopped (the towers learn the order through the CTR logit only), and
  outputs ``delta``; ``L_pair`` runs over the ranking candidates (N1-N2, ``rank >= 1``) of each request.
* ``rethink``: Eq. 1's BCE plus ``rethink_weight * (L_list(exposure) + L_list(click)) + rethink_distill_weight *
  L_distill`` (Eq. B4-B5). The exposure objective is one more task of the user tower's MMoE (``exposure``: HCCP
  4.4.3 attributes Rethink's extra parameters to "introducing an exposure task"); its list holds the request's
  N1, N2, N3 and N5 items, N1 positive. The click objective's list is the same, the clicked impressions positive.
  ``L_distill`` is the BCE of the click logit against the ranker's predicted CTR (``ranker_score``) on the
  impressions, so the dataset must carry that score (``tfrec.data_taobao.TAOBAO_LISTS`` does).
"""

from __future__ import annotations

from typing import Dict, Sequence, Tuple

import tensorflow as tf
import tf_keras as keras

from tfrec.features import SAMPLE_N1, SAMPLE_N2, SAMPLE_N3, SAMPLE_N5
from tfrec.losses.cascade_baselines import (copr_pairwise, copr_regularization, multi_positive_softmax,
                                            ranker_distillation)

EXPOSURE = "exposure"
RANKER_SCORE = "ranker_score"


@keras.saving.register_keras_serializable(package="tfrec")
class RelaxationNet(keras.layers.Layer):
    """COPR's relaxation net: ``[item embedding [B, L, d], user embedding [B, d]] -> delta [B, L]`` (an MLP with
    ReLU hidden layers and a linear output).

    Args:
      units: hidden sizes.
    """

    def __init__(self, units: Sequence[int] = (16,), **kwargs):
        super().__init__(**kwargs)
        self.units = [int(u) for u in units]
        self.hidden = [keras.layers.Dense(u, activation="relu", name=f"dense_{i}") for i, u in enumerate(self.units)]
        self.out = keras.layers.Dense(1, name="delta")

    def call(self, item_emb, user_emb):
        user = tf.broadcast_to(user_emb[:, None, :], tf.shape(item_emb))
        x = tf.concat([item_emb, user], axis=-1)
        for layer in self.hidden:
            x = layer(x)
        return tf.squeeze(self.out(x), -1)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def component_names(switches, task: str) -> Tuple[str, ...]:
    """The loss components a baseline variant adds."""
    if switches.copr:
        return (f"copr_pairwise_{task}", f"copr_reg_{task}")
    if switches.rethink:
        return (f"rethink_list_{EXPOSURE}", f"rethink_list_{task}", f"rethink_distill_{task}")
    return ()


def baseline_terms(model, y, y_pred, valid: tf.Tensor) -> Tuple[tf.Tensor, Dict[str, tf.Tensor]]:
    """``(weighted sum, {component: term})`` of the variant's baseline losses on the first task (module
    docstring); ``(0, {})`` for the other variants."""
    s, task = model.switches, model.tasks[0]
    st = tf.cast(y["sample_type"], tf.int32)
    logit = y_pred[f"logit_{task}"]
    terms: Dict[str, tf.Tensor] = {}
    if s.copr:
        ranks = tf.where(valid, tf.cast(y["rank"], tf.int32), -1)
        candidates = tf.logical_and(valid, ranks >= 1)
        delta = y_pred["relaxation"]
        terms[f"copr_pairwise_{task}"] = copr_pairwise(logit + delta, ranks, model.copr_chunk_size)
        terms[f"copr_reg_{task}"] = copr_regularization(delta, candidates)
        total = model.copr_weight * terms[f"copr_pairwise_{task}"] + model.copr_reg_weight * terms[f"copr_reg_{task}"]
        return total, terms
    if s.rethink:
        impressions = tf.logical_and(valid, tf.equal(st, SAMPLE_N1))
        listed = tf.logical_and(valid, tf.reduce_any(tf.stack([tf.equal(st, t) for t in (
            SAMPLE_N1, SAMPLE_N2, SAMPLE_N3, SAMPLE_N5)]), axis=0))
        minus = -tf.ones_like(logit)
        exposure = tf.where(listed, tf.cast(impressions, logit.dtype), minus)
        clicks = tf.where(listed, tf.where(impressions, tf.cast(y[task] > 0.5, logit.dtype), 0.0), minus)
        terms[f"rethink_list_{EXPOSURE}"] = multi_positive_softmax(y_pred[f"logit_{EXPOSURE}"], exposure)
        terms[f"rethink_list_{task}"] = multi_positive_softmax(logit, clicks)
        terms[f"rethink_distill_{task}"] = ranker_distillation(logit, y[RANKER_SCORE], impressions)
        total = (model.rethink_weight * (terms[f"rethink_list_{EXPOSURE}"] + terms[f"rethink_list_{task}"])
                 + model.rethink_distill_weight * terms[f"rethink_distill_{task}"])
        return total, terms
    return tf.constant(0.0), terms
