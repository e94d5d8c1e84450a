"""The loss variants of HCCP's experiments (section 4.1.3, Tables 1 and 3) as switches of one loss.

Every variant is the same Three-Tower model; only the terms of Eq. 6 that are on differ. :class:`LossSwitches`
names the terms, :data:`VARIANTS` maps the paper's rows to them (pure Python: the config validates names
without TensorFlow):

| variant | cali (Eq. 1) | local (Eq. 4) | global (Eq. 3) | InfoNCE, final score | contrastive, dot products |
|---|---|---|---|---|---|
| ``base`` | BCE | - | - | - | - |
| ``base_listnet`` | BCE | ListNet on impressions | - | - | - |
| ``base_listmle`` | BCE | ListMLE on ``R^t`` | - | - | - |
| ``wo_up`` | BCE | ListMLE | ListMLE on ``R^c`` | - | - |
| ``wo_prc`` | BCE | ListMLE | ListMLE | - | InfoNCE on N4-N5 |
| ``wo_neg`` | BCE | ListMLE | ListMLE | on N2-N3 | InfoNCE on N2-N3 |
| ``wo_margin`` | BCE | ListMLE | ListMLE | on N2-N3 | InfoNCE on N2-N5 |
| ``hccp`` | BCE | ListMLE | ListMLE | on N2-N3 | Margin InfoNCE on N2-N5 |
| ``copr`` | BCE | - | - | - | - |
| ``rethink`` | BCE | - | - | - | - |

``copr`` and ``rethink`` are the other papers' baselines of Tables 1-2 on the same model: COPR adds its relaxation
net, pairwise consistency and regularisation losses on the ranking candidates, Rethink an exposure task, list-wise
losses and the distillation of the ranker's CTR (``tfrec.models.preranking.baselines``,
``tfrec.losses.cascade_baselines``).

Readings: "Base+ListNet ... BCE classification loss and ListNet" is read as ListNet over each request's
impressions with the task's labels as the target distribution (no ranking orders: G1 uses impressions only);
"w/o PRC ... an InfoNCE loss only on in-batch negatives and pool sampling negatives" and "w/o Neg ... the InfoNCE
loss on candidates N2~N3" are read as plain InfoNCE (no margin) on the user-item dot products over those
negatives; the final-score InfoNCE of section 4.1.4 works on N2-N3 only, so it is off in ``wo_prc``. The two
contrastive terms, when both are on, are averaged (4.1.4: "The final loss is the average of the two losses").

HCCP(w/o Up): the paper describes it twice, differently. Section 4.1.3 (6): "improves consistency through a
global consistency task, without N2~N5 samples in estimation tasks", i.e. full HCCP (calibration, local ListMLE
on ``R^t``, global ListMLE on ``R^c``) without the contrastive terms on the unexposed samples. Section 4.4.1 (2):
"trains global consistency ... based on Base+ListNet", i.e. the global task added to ListNet on impressions.
tfrec takes 4.1.3's reading (``wo_up`` = Base+ListMLE + Eq. 3), because: 4.1.3 is where the variants are
defined, and 4.4.1 is a discussion of results; the ablations are a ladder in which each row removes one part of
HCCP, and w/o PRC and w/o Neg are defined "based on HCCP(w/o Up)" in 4.1.3, so w/o Up must share HCCP's
estimation tasks, whose local consistency is ListMLE on ``R^t`` (Eq. 4; 4.1.3 (3) calls Base+ListMLE "HCCP
with only local consistency tasks"); the 4.4.1 reading would change two parts at once (ListNet for ListMLE and
the global task), and 4.4.1 (1) itself calls Base+ListNet's ListNet "local consistency", so "Base+ListNet"
there reads as a loose name for the local-consistency model rather than as a change of loss.
"""

from __future__ import annotations

import dataclasses
from typing import Dict


@dataclasses.dataclass(frozen=True)
class LossSwitches:
    """Which terms of Eq. 6 a variant computes.

    Attributes:
      local: ``"none"``, ``"list_mle"`` (Eq. 4 on ``R^t``) or ``"list_net"`` (ListNet on impressions).
      global_consistency: Eq. 3 on ``R^c`` with the global task's score.
      score_info_nce: InfoNCE on the final (cross-weighted) score, positives vs N2-N3.
      dot_loss: ``"none"``, ``"info_nce"`` or ``"margin_info_nce"`` on the user-item dot products.
      hard_negatives: N2-N3 enter the dot-product loss.
      easy_negatives: N4-N5 enter the dot-product loss (N4 is sampled only when on).
      copr / rethink: the COPR or Rethink baseline losses (``tfrec.models.preranking.baselines``).
    """

    local: str = "none"
    global_consistency: bool = False
    score_info_nce: bool = False
    dot_loss: str = "none"
    hard_negatives: bool = False
    easy_negatives: bool = False
    copr: bool = False
    rethink: bool = False

    @property
    def uses_in_batch(self) -> bool:
        return self.dot_loss != "none" and self.easy_negatives


_UP = dict(local="list_mle", global_consistency=True)
VARIANTS: Dict[str, LossSwitches] = {
    "base": LossSwitches(),
    "base_listnet": LossSwitches(local="list_net"),
    "base_listmle": LossSwitches(local="list_mle"),
    "wo_up": LossSwitches(**_UP),
    "wo_prc": LossSwitches(**_UP, dot_loss="info_nce", easy_negatives=True),
    "wo_neg": LossSwitches(**_UP, score_info_nce=True, dot_loss="info_nce", hard_negatives=True),
    "wo_margin": LossSwitches(**_UP, score_info_nce=True, dot_loss="info_nce", hard_negatives=True,
                              easy_negatives=True),
    "hccp": LossSwitches(**_UP, score_info_nce=True, dot_loss="margin_info_nce", hard_negatives=True,
                         easy_negatives=True),
    "copr": LossSwitches(copr=True),
    "rethink": LossSwitches(rethink=True),
}


def switches(variant: str) -> LossSwitches:
    """The :class:`LossSwitches` of a variant name.

    Raises:
      ValueError: an unknown name (the message lists the known ones).
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown HCCP variant {variant!r}; known variants: {', '.join(VARIANTS)}")
    return VARIANTS[variant]
