"""The rows of HCCP's Tables 1 and 3 that the ``hccp`` protocol runs: the variants of
:data:`tfrec.hccp_variants.VARIANTS`, their names in the paper and their groups."""

from __future__ import annotations

from typing import Dict

#: Variant -> the row name of the paper's tables, in the paper's order (G1, G2, G3 ablations, HCCP).
VARIANT_LABELS: Dict[str, str] = {
    "base": "Base", "base_listnet": "Base+ListNet", "base_listmle": "Base+ListMLE", "wo_up": "HCCP(w/o Up)",
    "wo_prc": "HCCP(w/o PRC)", "wo_neg": "HCCP(w/o Neg)", "wo_margin": "HCCP(w/o Margin)", "hccp": "HCCP",
}
GROUPS: Dict[str, str] = {"base": "G1", "base_listnet": "G1", "base_listmle": "G2", "wo_up": "G3", "wo_prc": "G3",
                          "wo_neg": "G3", "wo_margin": "G3", "hccp": "G3"}
BASE, FULL = "base", "hccp"
ABLATIONS = ("wo_up", "wo_prc", "wo_neg", "wo_margin")
