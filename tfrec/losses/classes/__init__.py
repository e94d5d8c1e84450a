"""Keras ``Loss`` wrappers of tfrec's loss functions, registered by name (one module per loss family).

Importing this package registers every loss; ``tfrec.losses.get(name)`` builds one.
"""

from tfrec.losses.classes import contrastive, listwise, pairwise, preranking  # noqa: F401  (register)
from tfrec.losses.classes.pointwise import WeightedBCE

__all__ = ["WeightedBCE"]
