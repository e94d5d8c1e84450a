"""The base of tfrec's Keras losses and the registry that maps loss names to classes.

Each tfrec loss is a thin, serializable ``keras.losses.Loss`` over a plain function on tensors (the math lives in
its own module, e.g. ``tfrec.losses.pointwise``). The loss computes its own normalisation, exactly as its paper
does (for example BCE with beta_pos divides by N, not by the sum of weights), so ``__call__`` returns the final
scalar of one replica's batch and Keras' reduction setting is not used.

Conventions shared by all losses:

* call order ``(y_true, y_pred, sample_weight)``; ``y_pred`` is either the logit tensor ``[batch]`` or the
  model's output dict (with at least ``logit``; some losses need more keys, e.g. ``embedding``);
* labels < 0 mark padding and are excluded from the loss and from its normaliser;
* distribution: the loss is computed over the replica's slice of the global batch; the model divides it by the
  number of replicas, so for losses that average over examples the summed gradient equals the gradient of the
  loss over the global batch (replicas get equal batches: training drops the last partial batch). In-batch
  losses (pairwise, list-wise, contrastive, batch-normalised) take ``pairing="replica"`` or ``"global"``; see
  :mod:`tfrec.losses.distributed` for what each optimises.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Type, Union

import tensorflow as tf
import tf_keras as keras

_REGISTRY: Dict[str, Type["Loss"]] = {}


def register(name: str) -> Callable[[Type["Loss"]], Type["Loss"]]:
    """Class decorator: registers a :class:`Loss` subclass under ``name`` (and as a Keras serializable)."""

    def deco(cls: Type["Loss"]) -> Type["Loss"]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"a loss named {name!r} is already registered ({_REGISTRY[name].__name__})")
        _REGISTRY[name] = cls
        cls.registered_name = name
        return keras.saving.register_keras_serializable(package="tfrec")(cls)

    return deco


def names() -> List[str]:
    """The registered loss names."""
    return sorted(_REGISTRY)


def _lookup(name: str) -> Type["Loss"]:
    if name not in _REGISTRY:
        raise ValueError(f"unknown loss {name!r}; known losses: {', '.join(names())}")
    return _REGISTRY[name]


def _parameters(cls: Type["Loss"]) -> Dict[str, inspect.Parameter]:
    params = dict(inspect.signature(cls.__init__).parameters)
    params.pop("self", None)
    return {k: p for k, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}


def check_config(name: str, params: Mapping[str, Any]) -> None:
    """Checks that ``name`` is a registered loss and ``params`` are arguments it takes.

    Raises:
      ValueError: an unknown loss or an unknown argument (the message names it and lists the known ones).
    """
    cls = _lookup(name)
    known = _parameters(cls)
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ValueError(f"loss {name!r} has no argument {unknown[0]!r}; its arguments: {sorted(known)}")


def get(name: str, **config: Any) -> "Loss":
    """Builds the registered loss ``name`` with its arguments.

    Example:
      >>> loss = get("weighted_bce")
      >>> round(float(loss(tf.constant([1.0, 0.0]), tf.constant([0.0, 0.0]))), 6)
      0.693147
    """
    check_config(name, config)
    return _lookup(name)(**config)


def logits_of(y_pred: Union[tf.Tensor, Mapping[str, tf.Tensor]], key: str = "logit") -> tf.Tensor:
    """The ``[batch]`` logit tensor from a model output (a tensor or a dict with ``key``)."""
    if isinstance(y_pred, Mapping):
        if key not in y_pred:
            raise ValueError(f"the model output has no {key!r}; it has {sorted(y_pred)}")
        y_pred = y_pred[key]
    y_pred = tf.convert_to_tensor(y_pred)
    return tf.reshape(y_pred, [-1]) if y_pred.shape.rank != 1 else y_pred


class Loss(keras.losses.Loss):
    """Base class: subclasses implement :meth:`compute` (or :meth:`compute_terms`) and list their arguments in
    ``get_config``.

    Optional protocol, used by :class:`tfrec.models.RankingModel`:

    * ``components``: names of the terms a combined loss reports (e.g. ``("bce", "rank_net")``);
      :meth:`compute_terms` returns them beside the total, and the model tracks each as ``<name>_loss``.
    * state (e.g. an annealed coefficient): :meth:`create_state` makes the loss's variables under the current
      distribution strategy (the model calls it from ``compile``), :meth:`state` returns the trackable that
      holds them (the model tracks it, so checkpoints save and restore it), and :meth:`on_train_step_end` runs
      in replica context after each optimizer step and must update the state once per global step.
    """

    registered_name: str = ""
    components: Tuple[str, ...] = ()

    def __init__(self, name: str = None):
        super().__init__(name=name or self.registered_name or type(self).__name__,
                         reduction=keras.losses.Reduction.NONE)

    def compute(self, y_true: tf.Tensor, y_pred: Any, sample_weight: Any = None) -> tf.Tensor:
        """Returns the scalar loss of the batch."""
        if type(self).compute_terms is Loss.compute_terms:
            raise NotImplementedError(f"{type(self).__name__} implements neither compute nor compute_terms")
        return self.compute_terms(y_true, y_pred, sample_weight)[0]

    def compute_terms(self, y_true: tf.Tensor, y_pred: Any,
                      sample_weight: Any = None) -> Tuple[tf.Tensor, Dict[str, tf.Tensor]]:
        """Returns ``(total, {component name: term})``; a single-term loss returns an empty dict."""
        return self.compute(y_true, y_pred, sample_weight), {}

    def create_state(self) -> None:
        """Creates the loss's variables (if any) under the current strategy scope. Idempotent."""
        return None

    def state(self) -> Optional[tf.Module]:
        """The trackable holding the loss's variables, or None for a stateless loss."""
        return None

    def on_train_step_end(self) -> None:
        """Called in replica context after each optimizer step; stateful losses update their state here."""
        return None

    def __call__(self, y_true, y_pred, sample_weight=None):
        with tf.name_scope(self.name):
            return self.compute(y_true, y_pred, sample_weight)

    def call(self, y_true, y_pred):
        return self.compute(y_true, y_pred, None)

    def get_config(self) -> Dict[str, Any]:
        return {"name": self.name}
