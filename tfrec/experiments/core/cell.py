"""The one cell runner: every protocol's cell goes through :func:`run_cell`.

A cell is one training run of a protocol's setting and seed. The protocol's ``run_cell`` trains and evaluates it
in its run directory (the family's training and evaluation); :func:`run_cell` makes the directory, times the
whole cell (``wall_seconds`` of the run's result) and frees the Keras session and the Python garbage afterwards,
also when the cell fails, so many cells share one process.
"""

from __future__ import annotations

import gc
import os
import time
from typing import Any, Callable, Dict, Mapping


def free_session() -> None:
    """Clears the Keras session and collects garbage (between cells, or between the models of one cell)."""
    import tf_keras as keras

    keras.backend.clear_session()
    gc.collect()


def train_summary(summary: Mapping[str, Any]) -> Dict[str, Any]:
    """A training summary as a cell records it: without the per-epoch throughput (a list that depends on the
    machine's load, not on the run)."""
    out = dict(summary)
    out.pop("epoch_examples_per_second", None)
    return out


def run_cell(protocol, cfg, run_dir: str, printer: Callable[[str], None] = print, **options: Any) -> Dict[str, Any]:
    """Runs one cell of ``protocol`` (a :class:`tfrec.experiments.core.registry.Protocol`): its ``run_cell(cfg,
    run_dir, printer, **options)`` in ``run_dir`` (created), then frees the session.

    Returns:
      The protocol's run result, with ``wall_seconds`` (the whole cell, training and evaluation).
    """
    os.makedirs(run_dir, exist_ok=True)
    start = time.perf_counter()
    try:
        out = protocol.run_cell(cfg, run_dir, printer, **options)
        out["wall_seconds"] = time.perf_counter() - start
    finally:
        free_session()
    return out
