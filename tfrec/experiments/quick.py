"""``--quick``: a small simulated dataset and a small model, so every protocol runs on a 2-core machine.

The data is simulated (``tfrec.simulation``) and prepared with the Criteo Beam pipeline (``pipelines.criteo``)
once, into ``<out>/quick_data`` with ``beta_pos = 1.0`` (the cells apply their own beta_pos in the reader); a
rerun with the same settings reuses it. The settings are ``tfrec/configs/experiment_quick.yaml``.

A simulated dataset records the settings it was made with in ``<root>/made.json`` (:func:`record_made`);
:func:`made_with` tells whether it can be reused. The protocols with their own simulated data use the same marker.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Dict

from tfrec.config import RunConfig
from tfrec.experiments.store import read_json, write_json

QUICK_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs",
                            "experiment_quick.yaml")
#: The marker file of a made dataset, under its root.
MADE_MARKER = "made.json"


def made_with(root: str, data_dir: str, wanted: Dict[str, Any]) -> bool:
    """Whether the dataset ``data_dir`` was made with the settings ``wanted`` and can be reused.

    Args:
      root: the dataset's root directory (its ``made.json`` marker).
      data_dir: the prepared dataset directory.
      wanted: the settings it must have been made with (section -> ``dataclasses.asdict`` of the config).

    Returns:
      True when ``root/made.json`` records the same value for every key of ``wanted`` (its other keys, such as a
      simulation's measured truth, aside) and ``data_dir`` is complete (its ``stats.json``, the pipeline's last
      file, exists).
    """
    made = read_json(os.path.join(root, MADE_MARKER)) or {}
    return {k: made.get(k) for k in wanted} == wanted and os.path.exists(os.path.join(data_dir, "stats.json"))


def record_made(root: str, record: Dict[str, Any]) -> None:
    """Writes ``root/made.json`` (atomically) once the dataset is made: its settings, and what else to keep."""
    write_json(os.path.join(root, MADE_MARKER), record)


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
    if made_with(root, data_dir, wanted):
        printer(f"quick data: reusing {data_dir}")
        return data_dir
    os.makedirs(os.path.dirname(raw), exist_ok=True)
    printer(f"quick data: simulating {sim.rows:,} Criteo-shaped rows -> {raw}")
    result = simulate(sim)
    printer(f"quick data: positive rate {result.positive_rate:.4f}, AUC of the true probability "
            f"{result.truth_auc:.4f}; preparing with Beam ({prep.runner}) -> {data_dir}")
    stats = prepare(prep)
    printer("quick data: rows " + ", ".join(f"{s} {stats['rows_written'].get(s, 0):,}"
                                            for s in ("train", "valid", "test")))
    record_made(root, wanted)
    return data_dir
