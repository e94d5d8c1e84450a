"""The plots every protocol's table gets (matplotlib, Agg backend: no display needed), from its declared metrics:

* ``metrics.png``: the first AUC and the first logloss metric of the protocol (mean ± std over seeds) against
  its swept parameter (``Protocol.x``: beta_pos, alpha, gamma, keep ratio) or per setting, one line per method
  (KDD 2024 Fig. 4, 5, 7);
* ``lift.png``: the ratio of every metric that declares one (AUC lift ratio, BCE drop ratio) against the
  setting's baseline (Fig. 4's right axes).

The helpers (``pyplot``, ``save_figure``, ``runs_of``, ``write_rows``) serve the families' own figures.
"""

from __future__ import annotations

import csv
import math
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from tfrec.experiments.core.registry import Protocol, Setting


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def runs_of(results: Mapping[Any, Dict[str, Any]], setting: str) -> List[Dict[str, Any]]:
    return [r for c, r in sorted(results.items(), key=lambda kv: kv[0].seed) if r and c.setting == setting]


def _series(protocol: Protocol, settings: Sequence[Setting]):
    """method -> [(x, setting)], x the swept parameter or the setting's position."""
    out: Dict[str, list] = {}
    for i, s in enumerate(settings):
        x = s.params.get(protocol.x, i) if protocol.x else i
        out.setdefault(s.params.get("method", s.name), []).append((x, s))
    return out


def save_figure(fig, path: str) -> str:
    """Lays out ``fig``, writes it to ``path`` (PNG, 110 dpi), closes it and returns ``path``."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot().close(fig)
    return path


def _finish(fig, ax_list, protocol: Protocol, settings, path: str) -> str:
    for ax in ax_list:
        if protocol.x:
            ax.set_xlabel(protocol.x)
            if protocol.x in ("beta_pos", "alpha", "keep_ratio"):
                ax.invert_xaxis()  # the paper's axes go from dense / BCE-heavy to sparse / ranking-heavy
        else:
            ax.set_xticks(range(len(settings)))
            ax.set_xticklabels([s.name for s in settings], rotation=30, ha="right", fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(protocol.title, fontsize=10)
    return save_figure(fig, path)


def plot_metrics(protocol: Protocol, settings, rows, path: str) -> str:
    plt = pyplot()
    keys = [k for k in protocol.metric_keys if k.startswith("auc")][:1] + \
        [k for k in protocol.metric_keys if "logloss" in k][:1]
    fig, axes = plt.subplots(1, len(keys), figsize=(5.5 * len(keys), 4))
    axes = np.atleast_1d(axes)
    by_name = {r["setting"]: r for r in rows}
    for ax, key in zip(axes, keys):
        for method, points in _series(protocol, settings).items():
            xs = [x for x, _ in points]
            ms = [by_name[s.name].get(f"{key}_mean", math.nan) for _, s in points]
            sd = [by_name[s.name].get(f"{key}_std", math.nan) for _, s in points]
            sd = [0.0 if v is None or math.isnan(v) else v for v in sd]
            # Settings without a swept parameter are categories: markers only, no line between them.
            ax.errorbar(xs, ms, yerr=sd, marker="o", capsize=3, label=method,
                        linestyle="-" if protocol.x else "none")
        ax.set_ylabel(protocol.metric(key).label)
        ax.legend(fontsize=8)
    return _finish(fig, axes, protocol, settings, path)


def plot_lift(protocol: Protocol, settings, rows, path: str) -> Optional[str]:
    plt = pyplot()
    keys = [k for k in protocol.metric_keys if protocol.metric(k).ratio]
    with_base = [s for s in settings if s.baseline]
    if not keys or not with_base:
        return None
    fig, axes = plt.subplots(1, len(keys), figsize=(5.5 * len(keys), 4))
    axes = np.atleast_1d(axes)
    by_name = {r["setting"]: r for r in rows}
    for ax, key in zip(axes, keys):
        for method, points in _series(protocol, settings).items():
            points = [(x, s) for x, s in points if s.baseline]
            if points:
                ax.plot([x for x, _ in points], [by_name[s.name].get(f"{key}_ratio", math.nan) for _, s in points],
                        marker="o", label=method, linestyle="-" if protocol.x else "none")
        ax.axhline(0.0, color="grey", lw=0.8)
        kind = "AUC lift ratio" if protocol.metric(key).ratio == "lift" else "BCE drop ratio"
        ax.set_ylabel(f"{kind} ({protocol.metric(key).label})")
        ax.legend(fontsize=8)
    return _finish(fig, axes, protocol, settings, path)


def write_rows(path: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A CSV beside a figure: ``header`` then ``rows`` (floats as ``repr``, so they read back exactly)."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(list(header))
        for row in rows:
            w.writerow([repr(v) if isinstance(v, float) else v for v in row])
    return path
