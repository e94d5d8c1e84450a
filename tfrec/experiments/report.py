"""The default report of a protocol: the table (``results.csv``, ``results.md``) and the plots."""

from __future__ import annotations

import os
from typing import Any, Dict, List, Mapping, Sequence

from tfrec.experiments import plots, tables
from tfrec.experiments.protocols import Options, Protocol, Setting


def build_report(protocol: Protocol, settings: Sequence[Setting], results: Mapping[Any, Dict[str, Any]],
                 out_dir: str, opts: Options) -> List[str]:
    """Writes the table and the plots of ``results`` (Cell -> cell result) to ``out_dir``; returns the paths."""
    os.makedirs(out_dir, exist_ok=True)
    rows = tables.aggregate(protocol, settings, results)
    files = [tables.write_csv(rows, os.path.join(out_dir, "results.csv")),
             tables.write_markdown(protocol, rows, os.path.join(out_dir, "results.md"))]
    return files + plots.plot_all(protocol, settings, results, rows, out_dir)
