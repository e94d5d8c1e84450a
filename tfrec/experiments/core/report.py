"""The default report of a protocol: the table (``results.csv``, ``results.md``) and the plots."""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, List, Mapping, Sequence

from tfrec.experiments.core import plots, tables
from tfrec.experiments.core.registry import Options, Protocol, Setting


def table_plots(protocol: Protocol, settings: Sequence[Setting], results: Mapping[Any, Dict[str, Any]],
                rows: Sequence[Dict[str, Any]], out_dir: str) -> List[str]:
    """The plots of the table's metrics (``metrics.png``, ``lift.png`` when a metric has a ratio)."""
    paths = [plots.plot_metrics(protocol, settings, rows, os.path.join(out_dir, "metrics.png")),
             plots.plot_lift(protocol, settings, rows, os.path.join(out_dir, "lift.png"))]
    return [p for p in paths if p]


def build_report(protocol: Protocol, settings: Sequence[Setting], results: Mapping[Any, Dict[str, Any]],
                 out_dir: str, opts: Options, plot_all: Callable[..., List[str]] = table_plots) -> List[str]:
    """Writes the table and the plots of ``results`` (Cell -> cell result) to ``out_dir``; returns the paths.

    ``plot_all(protocol, settings, results, rows, out_dir)`` draws the plots (default: :func:`table_plots`; a
    family with figures of its own passes its function)."""
    os.makedirs(out_dir, exist_ok=True)
    rows = tables.aggregate(protocol, settings, results)
    files = [tables.write_csv(rows, os.path.join(out_dir, "results.csv")),
             tables.write_markdown(protocol, rows, os.path.join(out_dir, "results.md"))]
    return files + plot_all(protocol, settings, results, rows, out_dir)
