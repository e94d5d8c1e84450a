"""``--quick``: a small simulated dataset and a small model, so every protocol runs on a 2-core machine.

The data is simulated (``tfrec.simulation``) and prepared with the Criteo Beam pipeline (``pipelines.criteo``)
once, into ``<out>/quick_data`` with ``beta_pos = 1.0`` (the cells apply their own beta_pos in the reader); a
rerun with the same settings reuses it (:mod:`tfrec.experiments.core.datasets`). The settings are
``tfrec/configs/experiment_quick.yaml``.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable

from tfrec.config import RunConfig
from tfrec.experiments.core.datasets import made_once, simulate_then_prepare
from tfrec.experiments.core.registry import packaged_config

QUICK_CONFIG = packaged_config("experiment_quick.yaml")


def prepare_quick_data(cfg: RunConfig, out_dir: str, printer: Callable[[str], None] = print) -> str:
    """Simulates and prepares the quick dataset under ``out_dir`` (reused when its settings are unchanged).

    Returns:
      The prepared dataset directory.
    """
    from pipelines.criteo import run as prepare
    from tfrec.simulation import simulate

    root = os.path.join(os.path.abspath(out_dir), "quick_data")
    raw = os.path.join(root, "raw", "train.txt")
    data_dir = os.path.join(root, "data")
    sim = dataclasses.replace(cfg.simulation, output=raw)
    prep = dataclasses.replace(cfg.prepare, inputs=[raw], train=[], valid=[], test=[], output=data_dir)
    wanted = {"simulation": dataclasses.asdict(sim), "prepare": dataclasses.asdict(prep)}

    def make() -> None:
        os.makedirs(os.path.dirname(raw), exist_ok=True)
        simulate_then_prepare(
            printer, "quick data", f"{sim.rows:,} Criteo-shaped rows -> {raw}", lambda: simulate(sim),
            lambda r: (f"positive rate {r.positive_rate:.4f}, AUC of the true probability {r.truth_auc:.4f}; "
                       f"preparing with Beam ({prep.runner}) -> {data_dir}"),
            lambda: prepare(prep), "rows")

    return made_once(root, data_dir, wanted, make, printer)
