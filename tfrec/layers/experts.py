"""Mixture-of-experts layers of the multi-task models: experts, softmax gates, and PLE's CGC level.

* :class:`Experts`: ``n`` independent MLP experts on one input, stacked to ``[batch, n, d]``.
* :class:`Gate`: a softmax gate ``g(x) = softmax(W x + b)`` over ``n`` experts, ``[batch, n]`` (rows sum to
  one). MMoE (Ma et al., "Modeling Task Relationships in Multi-task Learning with Multi-gate
  Mixture-of-Experts", KDD 2018) gives each task ``k`` its own gate: ``f^k(x) = sum_i g^k(x)_i f_i(x)``.
* :class:`CGC`: one Customized Gate Control level of PLE (Tang et al., "Progressive Layered Extraction (PLE):
  A Novel Multi-Task Learning (MTL) Model for Personalized Recommendations", RecSys 2020): shared experts and
  per-task experts; task ``k``'s gate mixes its own experts and the shared ones; a non-final level also has a
  shared gate over all experts, whose output is the shared input of the next level.

:func:`mix` is the gate-weighted sum ``sum_i g_i e_i`` of a ``[batch, n]`` gate and ``[batch, n, d]`` experts.
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf
import tf_keras as keras

from tfrec.layers.mlp import MLP


def mix(gate: tf.Tensor, experts: tf.Tensor) -> tf.Tensor:
    """``sum_i gate[:, i] * experts[:, i, :]``: ``[batch, n]`` x ``[batch, n, d]`` -> ``[batch, d]``."""
    return tf.einsum("bn,bnd->bd", gate, experts)


@keras.saving.register_keras_serializable(package="tfrec")
class Experts(keras.layers.Layer):
    """``num_experts`` MLP experts (MMoE, Ma et al. 2018; PLE, Tang et al. 2020) applied to the same input.

    Call args: ``x`` ``[batch, d_in]``; returns ``[batch, num_experts, hidden_units[-1]]``.

    Args:
      num_experts: number of experts (>= 1).
      hidden_units / dropout / batch_norm / kernel_l2: of each expert's :class:`MLP`.
    """

    def __init__(self, num_experts: int, hidden_units: Sequence[int], dropout: float = 0.0,
                 batch_norm: bool = False, kernel_l2: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        if int(num_experts) < 1:
            raise ValueError(f"`num_experts` must be >= 1. Received: num_experts={num_experts}")
        self.num_experts = int(num_experts)
        self.hidden_units = [int(u) for u in hidden_units]
        self.dropout = float(dropout)
        self.batch_norm = bool(batch_norm)
        self.kernel_l2 = float(kernel_l2)
        self.experts = [MLP(self.hidden_units, self.dropout, self.batch_norm, self.kernel_l2, name=f"expert_{i}")
                        for i in range(self.num_experts)]

    def call(self, x, training=None):
        return tf.stack([e(x, training=training) for e in self.experts], axis=1)

    def get_config(self):
        return {**super().get_config(), "num_experts": self.num_experts, "hidden_units": self.hidden_units,
                "dropout": self.dropout, "batch_norm": self.batch_norm, "kernel_l2": self.kernel_l2}


@keras.saving.register_keras_serializable(package="tfrec")
class Gate(keras.layers.Layer):
    """A softmax gate over ``num_experts`` experts, ``g(x) = softmax(W x + b)`` (one per task in MMoE,
    Ma et al. 2018; per task and shared in PLE's CGC, Tang et al. 2020).

    Call args: ``x`` ``[batch, d_in]``; returns the gate weights ``[batch, num_experts]`` (each row sums to 1).
    """

    def __init__(self, num_experts: int, kernel_l2: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        if int(num_experts) < 1:
            raise ValueError(f"`num_experts` must be >= 1. Received: num_experts={num_experts}")
        self.num_experts = int(num_experts)
        self.kernel_l2 = float(kernel_l2)
        reg = keras.regularizers.l2(self.kernel_l2) if self.kernel_l2 > 0 else None
        self.dense = keras.layers.Dense(self.num_experts, kernel_regularizer=reg, name="gate_logits")

    def call(self, x):
        return tf.nn.softmax(self.dense(x), axis=-1)

    def get_config(self):
        return {**super().get_config(), "num_experts": self.num_experts, "kernel_l2": self.kernel_l2}


@keras.saving.register_keras_serializable(package="tfrec")
class CGC(keras.layers.Layer):
    """One Customized Gate Control level of PLE (Tang et al., RecSys 2020, Sec. 4.2-4.3).

    ``num_shared_experts`` shared experts and ``num_task_experts`` experts per task. Task ``k``'s output is
    ``g^k(x_k) . [E_k(x_k) ; E_s(x_s)]`` (its gate over its own and the shared experts, computed from its own
    input); with ``shared_gate`` (every level but the last) the shared output is
    ``g^s(x_s) . [E_1(x_1) ; ... ; E_T(x_T) ; E_s(x_s)]`` over all experts.

    Call args: ``inputs``: one tensor ``[batch, d]`` (the first level: every task and the shared part read it)
    or a list of ``num_tasks + 1`` tensors ``[x_1, ..., x_T, x_s]`` (the previous level's outputs).
    Returns ``(outputs, gates)``: ``outputs`` a list of ``num_tasks`` tensors ``[batch, d_e]`` plus the shared
    one when ``shared_gate``; ``gates`` the matching list of gate weights (task ``k``:
    ``[batch, num_task_experts + num_shared_experts]``, own experts first; shared:
    ``[batch, num_tasks * num_task_experts + num_shared_experts]``).
    """

    def __init__(self, num_tasks: int, num_shared_experts: int, num_task_experts: int,
                 expert_units: Sequence[int], dropout: float = 0.0, batch_norm: bool = False,
                 kernel_l2: float = 0.0, shared_gate: bool = False, **kwargs):
        super().__init__(**kwargs)
        if int(num_tasks) < 1:
            raise ValueError(f"`num_tasks` must be >= 1. Received: num_tasks={num_tasks}")
        self.num_tasks = int(num_tasks)
        self.num_shared_experts = int(num_shared_experts)
        self.num_task_experts = int(num_task_experts)
        if self.num_task_experts < 1 or self.num_shared_experts < 0:
            raise ValueError("CGC needs >= 1 expert per task and >= 0 shared experts. Received: "
                             f"num_task_experts={num_task_experts}, num_shared_experts={num_shared_experts}")
        self.expert_units = [int(u) for u in expert_units]
        self.dropout = float(dropout)
        self.batch_norm = bool(batch_norm)
        self.kernel_l2 = float(kernel_l2)
        self.shared_gate = bool(shared_gate)
        args = (self.expert_units, self.dropout, self.batch_norm, self.kernel_l2)
        self.task_experts = [Experts(self.num_task_experts, *args, name=f"task_experts_{k}")
                             for k in range(self.num_tasks)]
        self.shared_experts = (Experts(self.num_shared_experts, *args, name="shared_experts")
                               if self.num_shared_experts > 0 else None)
        self.task_gates = [Gate(self.num_task_experts + self.num_shared_experts, self.kernel_l2,
                                name=f"task_gate_{k}") for k in range(self.num_tasks)]
        self.gate_shared = (Gate(self.num_tasks * self.num_task_experts + self.num_shared_experts, self.kernel_l2,
                                 name="shared_gate") if self.shared_gate else None)

    def call(self, inputs, training=None):
        if isinstance(inputs, (list, tuple)):
            if len(inputs) != self.num_tasks + 1:
                raise ValueError(f"CGC expects {self.num_tasks + 1} inputs (tasks + shared). "
                                 f"Received: {len(inputs)}")
            task_in, shared_in = list(inputs[:-1]), inputs[-1]
        else:
            task_in, shared_in = [inputs] * self.num_tasks, inputs
        own = [e(x, training=training) for e, x in zip(self.task_experts, task_in)]
        shared = self.shared_experts(shared_in, training=training) if self.shared_experts is not None else None
        outputs, gates = [], []
        for k in range(self.num_tasks):
            experts = own[k] if shared is None else tf.concat([own[k], shared], axis=1)
            g = self.task_gates[k](task_in[k])
            outputs.append(mix(g, experts))
            gates.append(g)
        if self.gate_shared is not None:
            experts = tf.concat(own + ([shared] if shared is not None else []), axis=1)
            g = self.gate_shared(shared_in)
            outputs.append(mix(g, experts))
            gates.append(g)
        return outputs, gates

    def get_config(self):
        return {**super().get_config(), "num_tasks": self.num_tasks,
                "num_shared_experts": self.num_shared_experts, "num_task_experts": self.num_task_experts,
                "expert_units": self.expert_units, "dropout": self.dropout, "batch_norm": self.batch_norm,
                "kernel_l2": self.kernel_l2, "shared_gate": self.shared_gate}
