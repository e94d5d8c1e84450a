"""Pre-ranking losses of HCCP (ListMLE consistency, InfoNCE, Margin InfoNCE) as Keras ``Loss`` classes.

The math: :mod:`tfrec.losses.consistency` (ListMLE, Eq. 3-4) and :mod:`tfrec.losses.infonce` (Eq. 5,
Algorithm 1). All three take one request per row of a ``[B, K]`` layout (``B`` requests in the replica's batch,
``K`` item slots each) and every row's loss depends on that row only, so the per-replica computation is exact
under a distribution strategy ("replica" pairing; no ``pairing`` argument): each class divides its sum over
rows by the replica's ``B`` (Eq. 3-5's ``1/|U|``), the model divides by the number of replicas ``R``, and the
summed gradient is that of the global batch (replicas get equal batches).

Contracts (``y_true``, ``y_pred``):

* :class:`ListMLE`: ``y_true`` = arranged ranks ``[B, K]`` (``r^c`` for global consistency, ``r^t`` for local),
  smaller = earlier; ``< 0`` = padding. HCCP's ``r^c = r - (e + l^clk) N^r`` is negative for exposed items, so
  store it shifted (``r^c + 2 N^r``) or as the 0-based position in the arranged sequence (the loss only depends
  on the order). ``y_pred`` = the scores ``[B, K]`` or the model's output dict, read at ``score_key``.
  ``sample_weight``: optional per-request weights ``[B]``.
* :class:`InfoNCE` and :class:`MarginInfoNCE`: ``y_true`` = sample roles ``[B, K]`` (int, or float holding
  integers): ``1`` positive (an impression with the task's label 1, ``B^t``), ``2`` hard negative (N2 unexposed
  ranking / N3 pre-ranking candidates, ``B^h``), ``3`` easy negative (N4 in-batch / N5 pool negatives, ``B^e``),
  ``0`` (or any other value, e.g. ``-1``) unused: padding, or an impression that is not a positive of this task.
  ``y_pred`` = the model's output dict: ``logit_key`` (default ``"logit"``) ``[B, K]`` the user-item dot
  products ``u . i``; for MarginInfoNCE also ``user_norm_key`` (``"user_norm"``) ``||u||`` as ``[B]``, ``[B, 1]``
  or ``[B, K]`` and ``item_norm_key`` (``"item_norm"``) ``||i||`` ``[B, K]``. InfoNCE also takes the logit
  tensor itself. No ``sample_weight`` (Eq. 5 has none): passing one is an error.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Mapping, Optional

import numpy as np
import tensorflow as tf

import tfrec.losses.consistency as consistency

import tfrec.losses.infonce as infonce
from tfrec.losses.base import Loss, register

POSITIVE, HARD_NEGATIVE, EASY_NEGATIVE = 1, 2, 3


def _output(y_pred: Any, key: str) -> tf.Tensor:
    """``y_pred[key]`` of an output dict (or ``y_pred`` itself), in float32 when the model computes in 16 bits."""
    if isinstance(y_pred, Mapping):
        if key not in y_pred:
            raise ValueError(f"the model output has no {key!r}; it has {sorted(y_pred)}")
        y_pred = y_pred[key]
    t = tf.convert_to_tensor(y_pred)
    if t.dtype in (tf.float16, tf.bfloat16) or not t.dtype.is_floating:
        t = tf.cast(t, tf.float32)
    return t


def _list_tensor(t: tf.Tensor, what: str) -> tf.Tensor:
    if t.shape.rank is not None and t.shape.rank != 2:
        raise ValueError(f"{what} must be [batch, list_size]; got shape {t.shape}")
    return t


def _no_sample_weight(loss: Loss, sample_weight: Any) -> None:
    if sample_weight is not None:
        raise ValueError(f"{type(loss).__name__} takes no sample_weight (HCCP Eq. 5 has none); the sample roles "
                         "in y_true select what enters the loss")


def _roles(y_true: tf.Tensor):
    roles = _list_tensor(tf.convert_to_tensor(y_true), "y_true (the sample roles)")
    if roles.dtype.is_floating:
        roles = tf.round(roles)
    roles = tf.cast(roles, tf.int32)
    return (tf.reshape(tf.equal(roles, POSITIVE), [-1]), tf.reshape(tf.equal(roles, HARD_NEGATIVE), [-1]),
            tf.reshape(tf.equal(roles, EASY_NEGATIVE), [-1]))


def _check_temperature_and_neg_min(temperature: float, neg_min: float) -> None:
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"`temperature` must be > 0. Received: temperature={temperature}")
    f32_max = float(np.finfo(np.float32).max)
    if not (math.isfinite(neg_min) and neg_min < 0 and abs(neg_min / temperature) < f32_max):
        raise ValueError("`neg_min` must be a finite negative value with neg_min / temperature finite in float32 "
                         f"(e.g. -1e9). Received: neg_min={neg_min}")


def derived_beta_scale(beta_init: float, beta_final: float, steps: int) -> float:
    """The per-step factor that takes Algorithm 1's ``beta`` from ``beta_init`` to ``beta_final`` in ``steps``
    optimizer steps: ``scale = (beta_final / beta_init)**(1 / steps)`` (1.0 when ``beta_init <= beta_final``:
    nothing to anneal). See :class:`MarginInfoNCE` for the schedule.

    Raises:
      ValueError: ``steps < 1``, ``beta_final <= 0`` or a non-finite ``beta_init``.
    """
    if int(steps) < 1:
        raise ValueError(f"`steps` must be >= 1. Received: steps={steps}")
    if not (math.isfinite(beta_init) and beta_init >= 0 and math.isfinite(beta_final) and beta_final > 0):
        raise ValueError(f"`beta_init` must be finite and >= 0 and `beta_final` finite and > 0. Received: "
                         f"beta_init={beta_init}, beta_final={beta_final}")
    if beta_init <= beta_final:
        return 1.0
    return float((beta_final / beta_init) ** (1.0 / int(steps)))


@register("list_mle")
class ListMLE(Loss):
    """ListMLE consistency loss over an arranged order, HCCP Eq. 3 (global, ``r^c``) and Eq. 4 (local, ``r^t``).

    ```
    L = -1/|U| sum_{u in U} sum_j log( exp(y_j) / sum_{k >= j} exp(y_k) )     (items in arranged order)
    ```

    See :func:`tfrec.losses.consistency.list_mle` (stable sort: ties keep their column order; padding excluded
    from items and denominators; ``|U|`` = the replica's number of requests, all-padding ones included). The
    ``y_true`` / ``y_pred`` contract is in this module's docstring.

    Args:
      score_key: the key of the ``[B, K]`` scores in the model's output dict (ignored for a tensor ``y_pred``).
      name: loss name.
    """

    def __init__(self, score_key: str = "logit", name: Optional[str] = None):
        super().__init__(name=name)
        if not isinstance(score_key, str) or not score_key:
            raise ValueError(f"`score_key` must be a non-empty string. Received: score_key={score_key!r}")
        self.score_key = score_key

    def compute(self, y_true, y_pred, sample_weight=None):
        scores = _list_tensor(_output(y_pred, self.score_key), f"y_pred[{self.score_key!r}]")
        weights = None
        if sample_weight is not None:
            weights = tf.convert_to_tensor(sample_weight)
            if weights.shape.rank is not None and weights.shape.rank > 1 and weights.shape[-1] != 1:
                raise ValueError(f"ListMLE's sample_weight is one weight per request, [batch] or [batch, 1]; "
                                 f"got shape {weights.shape}")
        return consistency.list_mle(scores, _list_tensor(tf.convert_to_tensor(y_true), "y_true (the ranks)"),
                                    weights=weights)

    def get_config(self) -> Dict[str, Any]:
        return {**super().get_config(), "score_key": self.score_key}


@register("info_nce")
class InfoNCE(Loss):
    """Plain InfoNCE over each request's positives against its hard and easy negatives (HCCP "w/o Margin").

    ```
    L = -1/|U| sum_{u in U} sum_{j in B^t_u} log( e^{y_j/tau} / ( e^{y_j/tau} + sum_{i in B^h_u u B^e_u} e^{y_i/tau} ) )
    ```

    :func:`tfrec.losses.infonce.info_nce` (Algorithm 1's ``reduce_sum``) divided by ``B``, the number of requests
    in the replica's batch (``|U|``; requests without a positive count and contribute 0).

    Args:
      temperature: ``tau`` (HCCP: 0.1).
      neg_min: the fill of unused slots before the softmax; ``exp(neg_min / tau)`` must underflow to 0 (default
        -1e9: exact exclusion for any logit above ``neg_min + 104 tau``).
      logit_key: the key of the ``[B, K]`` dot products in the model's output dict.
      name: loss name.
    """

    def __init__(self, temperature: float = 0.1, neg_min: float = -1e9, logit_key: str = "logit",
                 name: Optional[str] = None):
        super().__init__(name=name)
        self.temperature = float(temperature)
        self.neg_min = float(neg_min)
        _check_temperature_and_neg_min(self.temperature, self.neg_min)
        self.logit_key = logit_key

    def compute(self, y_true, y_pred, sample_weight=None):
        _no_sample_weight(self, sample_weight)
        logits = _list_tensor(_output(y_pred, self.logit_key), f"y_pred[{self.logit_key!r}]")
        p_mask, n_hard_mask, n_easy_mask = _roles(y_true)
        shape = tf.shape(logits)
        total = infonce.info_nce(tf.reshape(logits, [-1]), p_mask, n_hard_mask, n_easy_mask, shape[0], shape[1],
                                 self.temperature, self.neg_min)
        return tf.math.divide_no_nan(total, tf.cast(shape[0], total.dtype))

    def get_config(self) -> Dict[str, Any]:
        return {**super().get_config(), "temperature": self.temperature, "neg_min": self.neg_min,
                "logit_key": self.logit_key}


@register("margin_info_nce")
class MarginInfoNCE(Loss):
    """Margin InfoNCE, HCCP Eq. 5 via Algorithm 1, with the annealed blend coefficient ``beta`` as loss state.

    ```
    L_neg = -1/|U| sum_{u in U} sum_{j in B^t_u} log( e^{v_j phi(theta_j)/tau} /
              ( e^{v_j phi(theta_j)/tau} + sum_{i in B^h_u} e^{v_i phi(theta_i)/tau}
                + sum_{k in B^e_u} e^{v_k cos(theta_k)/tau} ) )
    ```

    with ``v = ||u|| ||i||`` and ``phi(theta) = cos(theta) - m``. Computed by
    :func:`tfrec.losses.infonce.margin_info_nce` (Algorithm 1: margin on positives and hard negatives, raw logits
    for easy negatives, blended ``l_update = (logits_m + beta * logits) / (1 + beta)``) and divided by ``B``, the
    number of requests in the replica's batch: Eq. 5's ``1/|U|`` (Algorithm 1 returns the sum).

    The schedule (Algorithm 1, line 5, ``beta *= scale``): ``beta`` starts at ``beta_init`` (line 4's blend
    coefficient; 9999 is the paper's value: the loss starts as plain InfoNCE) and is multiplied by ``scale`` after
    every optimizer step, so after ``n`` steps ``beta = beta_init * scale**n``. The paper gives no value for
    ``scale``: Algorithm 1 names it on line 5 only, with the comment "beta=9999 at the beginning of training. As
    iteration steps increase, beta becomes smaller", and neither section 3.3.2 (the loss) nor 4.1.4 (the
    implementation details) gives a value. A fixed factor means something different on every run length: 0.999
    keeps ``beta`` above 8,000 for the first 130 steps, so a short run never leaves plain InfoNCE. Two modes:

    * relative to the run (``beta_final`` set; tfrec's default through the ``preranking`` config): ``scale`` is
      :func:`derived_beta_scale` ``= (beta_final / beta_init)**(1 / n_final)``, so that ``beta`` reaches
      ``beta_final`` after ``n_final`` steps (the trainer sets ``n_final`` to a fraction of the planned steps),
      and ``beta_final`` is a floor: ``beta = max(beta * scale, beta_final)``, so it does not decrease below
      ``beta_final`` afterwards (the margin phase keeps a fixed ``beta_final / (1 + beta_final)`` of InfoNCE);
    * fixed (``beta_final`` None): Algorithm 1's literal form, ``beta *= scale`` with the given ``scale`` and no
      floor.

    ``beta`` is a non-trainable float32 variable (``ON_WRITE`` synchronisation, ``ONLY_FIRST_REPLICA``
    aggregation: the update in replica context under MirroredStrategy happens once per global step) held by the
    ``tf.Module`` that :meth:`state` returns, which the model tracks, so checkpoints save and restore it (a
    resumed run continues the schedule where it stopped).

    Args:
      margin: the additive margin ``m`` (HCCP: 0.9); ``>= 0``.
      temperature: ``tau`` (HCCP: 0.1).
      beta_init: initial ``beta`` (HCCP: 9999); ``>= 0``.
      scale: per-step factor on ``beta``, in (0, 1] (1 keeps ``beta`` fixed).
      beta_final: the floor of ``beta`` (relative mode, see above), in [0, ``beta_init``]; None: no floor
        (Algorithm 1's literal form).
      neg_min: the fill of unused slots (see :class:`InfoNCE`; default -1e9).
      logit_key, user_norm_key, item_norm_key: keys of ``u . i`` ``[B, K]``, ``||u||`` (``[B]``, ``[B, 1]`` or
        ``[B, K]``) and ``||i||`` ``[B, K]`` in the model's output dict.
      name: loss name.
    """

    def __init__(self, margin: float = 0.9, temperature: float = 0.1, beta_init: float = 9999.0,
                 scale: float = 0.999, neg_min: float = -1e9, logit_key: str = "logit",
                 user_norm_key: str = "user_norm", item_norm_key: str = "item_norm", name: Optional[str] = None,
                 beta_final: Optional[float] = None):
        super().__init__(name=name)
        self.margin = float(margin)
        self.temperature = float(temperature)
        self.beta_init = float(beta_init)
        self.scale = float(scale)
        self.neg_min = float(neg_min)
        if not (math.isfinite(self.margin) and self.margin >= 0):
            raise ValueError(f"`margin` must be >= 0. Received: margin={margin}")
        if not (math.isfinite(self.beta_init) and self.beta_init >= 0):
            raise ValueError(f"`beta_init` must be a finite value >= 0. Received: beta_init={beta_init}")
        if not 0.0 < self.scale <= 1.0:
            raise ValueError(f"`scale` must be in (0, 1]. Received: scale={scale}")
        self.beta_final = None if beta_final is None else float(beta_final)
        if self.beta_final is not None and not 0.0 <= self.beta_final <= self.beta_init:
            raise ValueError(f"`beta_final` must be in [0, beta_init={self.beta_init}]. Received: "
                             f"beta_final={beta_final}")
        _check_temperature_and_neg_min(self.temperature, self.neg_min)
        self.logit_key, self.user_norm_key, self.item_norm_key = logit_key, user_norm_key, item_norm_key
        self._state: Optional[tf.Module] = None
        self._state_strategy = None

    # -- state: the annealed beta ------------------------------------------------------------------------------
    def create_state(self) -> None:
        """Creates ``beta`` (under the current strategy scope); idempotent.

        If the loss was used outside any strategy first (eager calls before ``compile``) and is then set up under
        a strategy's scope, ``beta`` is re-created there with its current value, so that it is mirrored and its
        per-step update is synchronised.
        """
        strategy = tf.distribute.get_strategy()
        if self._state is not None:
            moved = (tf.distribute.has_strategy() and tf.distribute.in_cross_replica_context()
                     and strategy is not self._state_strategy)
            if not moved:
                return
            initial = self._state.beta.read_value()
        else:
            initial = self.beta_init
        state = tf.Module(name="margin_info_nce_state")
        with tf.init_scope():  # also when first called inside a tf.function trace (direct, uncompiled use)
            state.beta = tf.Variable(initial, dtype=tf.float32, trainable=False, name="beta",
                                     synchronization=tf.VariableSynchronization.ON_WRITE,
                                     aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        self._state, self._state_strategy = state, strategy

    def state(self) -> Optional[tf.Module]:
        self.create_state()
        return self._state

    @property
    def beta(self) -> tf.Variable:
        """The current ``beta`` variable (created on first use)."""
        self.create_state()
        return self._state.beta

    def on_train_step_end(self) -> tf.Tensor:
        """Algorithm 1, line 5: ``beta *= scale``, not below ``beta_final`` when set (once per global step; see
        the class docstring). Returns the new value (computed from the read that the update uses: a read of the
        mirrored variable after the update is not ordered after it on every replica)."""
        beta = self.beta
        new = beta.read_value() * self.scale
        if self.beta_final is not None:
            new = tf.maximum(new, tf.constant(self.beta_final, beta.dtype))
        beta.assign(new)
        return new

    # -- loss ----------------------------------------------------------------------------------------------------
    def compute(self, y_true, y_pred, sample_weight=None):
        _no_sample_weight(self, sample_weight)
        if not isinstance(y_pred, Mapping):
            raise ValueError(f"MarginInfoNCE needs the model's output dict with {self.logit_key!r}, "
                             f"{self.user_norm_key!r} and {self.item_norm_key!r}; got a {type(y_pred).__name__}")
        logits = _list_tensor(_output(y_pred, self.logit_key), f"y_pred[{self.logit_key!r}]")
        shape = tf.shape(logits)
        u_norm = _output(y_pred, self.user_norm_key)
        if u_norm.shape.rank == 1:
            u_norm = u_norm[:, None]
        u_norm = tf.broadcast_to(u_norm, shape)
        i_norm = _list_tensor(_output(y_pred, self.item_norm_key), f"y_pred[{self.item_norm_key!r}]")
        p_mask, n_hard_mask, n_easy_mask = _roles(y_true)
        total = infonce.margin_info_nce(
            tf.reshape(logits, [-1]), tf.reshape(u_norm, [-1]), tf.reshape(i_norm, [-1]), p_mask, n_hard_mask,
            n_easy_mask, shape[0], shape[1], self.margin, self.beta, self.temperature, self.neg_min)
        return tf.math.divide_no_nan(total, tf.cast(shape[0], total.dtype))

    def get_config(self) -> Dict[str, Any]:
        return {**super().get_config(), "margin": self.margin, "temperature": self.temperature,
                "beta_init": self.beta_init, "scale": self.scale, "beta_final": self.beta_final,
                "neg_min": self.neg_min,
                "logit_key": self.logit_key, "user_norm_key": self.user_norm_key,
                "item_norm_key": self.item_norm_key}
