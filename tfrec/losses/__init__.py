"""tfrec's losses: ``tfrec.losses.get(name, **config)`` returns a serializable tf-keras ``Loss``.

The math is in plain functions (``tfrec.losses.pointwise``, ...); the ``Loss`` classes in
``tfrec.losses.classes`` wrap them and register their names, which YAML configs use (``loss.name``).
"""

from tfrec.losses import classes as _classes  # noqa: F401  (registers the losses)
from tfrec.losses.base import Loss, check_config, get, logits_of, names, register
from tfrec.losses.classes import WeightedBCE

__all__ = ["Loss", "WeightedBCE", "check_config", "get", "logits_of", "names", "register"]
