"""HCCP pre-ranking: the Three-Tower model (``model``), its towers, in-batch negatives N4 and loss variants."""

from tfrec.models.preranking.model import ThreeTower
from tfrec.hccp_variants import VARIANTS, LossSwitches, switches

__all__ = ["LossSwitches", "ThreeTower", "VARIANTS", "switches"]
