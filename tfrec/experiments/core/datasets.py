"""Datasets an experiment makes for itself (simulated, then prepared), and when they can be reused.

A made dataset records the settings it was made with in ``<root>/made.json`` (:func:`record_made`);
:func:`made_with` tells whether it can be reused. Every family's quick data and simulated sweeps use it.
"""

from __future__ import annotations

import os
from typing import Any, Dict

from tfrec.experiments.core.store import read_json, write_json

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
