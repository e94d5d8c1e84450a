"""Keras ``Loss`` wrappers of tfrec's loss functions, registered by name (one module per loss family).

Importing this package registers every loss; ``tfrec.losses.get(name)`` builds one.
"""

from tfrec.losses.classes.cascade_baselines import COPRPairwise, RankerDistillation, RethinkListwise
from tfrec.losses.classes.contrastive import CombinedContrastive, SupervisedContrastive
from tfrec.losses.classes.listwise import JRC, RCR, CombinedList, ListCE, ListNet
from tfrec.losses.classes.pairwise import PWiseR, CombinedPair, RankNet
from tfrec.losses.classes.pointwise import Focal, NormalizedFocal, WeightedBCE
from tfrec.losses.classes.preranking import InfoNCE, ListMLE, MarginInfoNCE

__all__ = ["COPRPairwise", "RankerDistillation", "RethinkListwise", "CombinedContrastive", "CombinedList", "CombinedPair", "Focal", "InfoNCE", "JRC", "ListCE", "ListMLE",
           "ListNet", "MarginInfoNCE", "NormalizedFocal", "PWiseR", "RCR", "RankNet", "SupervisedContrastive",
           "WeightedBCE"]
