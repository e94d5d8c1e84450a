"""tfrec's losses: ``tfrec.losses.get(name, **config)`` returns a serializable tf-keras ``Loss``.

The math is in plain functions on tensors, one module per family: ``pointwise`` (BCE with beta_pos, Focal,
Focal', BCE on impressions), ``pairwise`` (RankNet, PWiseR), ``listwise`` (ListNet, ListCE, JRC), ``contrastive``
(supervised contrastive), ``consistency`` (ListMLE, ListNet over impressions) and ``infonce`` (InfoNCE, Margin
InfoNCE). The ``Loss`` classes in
``tfrec.losses.classes`` wrap them and register their names, which YAML configs use (``loss.name``).
``distributed`` says how in-batch losses pair under a distribution strategy (``pairing``).
"""

from tfrec.losses.base import Loss, check_config, get, logits_of, names, register
from tfrec.losses.classes import (JRC, RCR, CombinedContrastive, CombinedList, CombinedPair, Focal, InfoNCE,
                                  ListCE, ListMLE, ListNet, MarginInfoNCE, NormalizedFocal, PWiseR, RankNet,
                                  SupervisedContrastive, WeightedBCE)

__all__ = ["CombinedContrastive", "CombinedList", "CombinedPair", "Focal", "InfoNCE", "JRC", "ListCE", "ListMLE",
           "ListNet", "Loss", "MarginInfoNCE", "NormalizedFocal", "PWiseR", "RCR", "RankNet",
           "SupervisedContrastive", "WeightedBCE", "check_config", "get", "logits_of", "names", "register"]
