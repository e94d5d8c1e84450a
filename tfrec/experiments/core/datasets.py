"""Datasets an experiment makes for itself (simulated, then prepared), and when they can be reused.

A made dataset records the settings it was made with in ``<root>/made.json`` (:func:`record_made`);
:func:`made_with` tells whether it can be reused; :func:`made_once` makes it unless so. Every family's quick data
and simulated sweeps use it.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, Optional

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


def made_once(root: str, data_dir: str, wanted: Dict[str, Any], make: Callable[[], Optional[Dict[str, Any]]],
              printer: Callable[[str], None] = print, label: str = "quick data") -> str:
    """``data_dir``, made by ``make()`` unless it was made with ``wanted`` before (:func:`made_with`: then
    reused, with a line saying so). ``make`` returns what else to record beside ``wanted`` (a simulation's
    measured truth, a ranker; None: nothing), and the settings are recorded once it has finished, so an
    interrupted make is redone."""
    if made_with(root, data_dir, wanted):
        printer(f"{label}: reusing {data_dir}")
        return data_dir
    extra = make() or {}
    record_made(root, {**wanted, **extra})
    return data_dir


def split_counts(written: Dict[str, int]) -> str:
    """``train N, valid N, test N`` of a pipeline's per-split counts (``rows_written``, ``requests_written``)."""
    return ", ".join(f"{s} {written.get(s, 0):,}" for s in ("train", "valid", "test"))


def simulate_then_prepare(printer: Callable[[str], None], label: str, simulating: str, simulate: Callable[[], Any],
                          measured: Callable[[Any], str], prepare: Callable[[], Dict[str, Any]], unit: str) -> Any:
    """Simulates raw data, then prepares it with a Beam pipeline, with a progress line for each step: ``simulating``
    (what), ``measured(result)`` (what the simulator measured, and where the pipeline writes) and the records the
    pipeline wrote per split (``<unit>_written``: ``rows``, ``requests``). Returns the simulator's result."""
    printer(f"{label}: simulating {simulating}")
    result = simulate()
    printer(f"{label}: {measured(result)}")
    stats = prepare()
    printer(f"{label}: {unit} " + split_counts(stats[f"{unit}_written"]))
    return result
