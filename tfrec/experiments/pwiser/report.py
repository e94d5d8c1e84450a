"""The report of the PWiseR protocol (:mod:`tfrec.experiments.pwiser.protocol`): one table per part and its plots.

Files, in the protocol's report folder:

* ``results_<part>.csv`` / ``results_<part>.md`` for ``grid``, ``noise`` and ``margins``
  (:func:`tfrec.experiments.core.tables.aggregate`: mean and standard deviation over seeds of each metric, the
  paired difference BCE + PWiseR - BCE of the same architecture and data, its paired t-test and lift ratio), and
  ``results.md`` with the three tables one after the other;
* ``grid_auc.png``: CTR, CVR and CTCVR AUC per architecture, BCE and BCE + PWiseR side by side (mean, error
  bars one standard deviation over seeds);
* ``noise_lift.png``: the AUC of both methods and the paired AUC difference (PWiseR - BCE, mean ± standard
  deviation of the per-seed differences) against the noisy-click share;
* ``margins_heatmap.png``: the paired AUC difference to BCE over the lambda x m1 grid, per task.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from tfrec.experiments.core import tables
from tfrec.experiments.core.plots import pyplot
from tfrec.experiments.core.registry import Options, Protocol, Setting
from tfrec.experiments.pwiser.settings import METRICS, PARTS, settings_of_part

TITLES = {"grid": "architecture x loss", "noise": "noisy-click share sweep (MMoE, simulated funnel)",
          "margins": "lambda x margin grid (MMoE; m2 = 2 m1)"}
AUCS = ("ctr_auc", "cvr_auc", "ctcvr_auc")
BY_KEY = {m.key: m for m in METRICS}


def _value(row: Dict[str, Any], key: str) -> float:
    v = row.get(key)
    return math.nan if v is None else float(v)


def _std(row: Dict[str, Any], key: str) -> float:
    v = _value(row, key)
    return 0.0 if math.isnan(v) else v


def plot_grid(rows: Sequence[Dict[str, Any]], path: str) -> str:
    plt = pyplot()
    archs = list(dict.fromkeys(r["param_architecture"] for r in rows))
    methods = list(dict.fromkeys(r["param_method"] for r in rows))
    by = {(r["param_architecture"], r["param_method"]): r for r in rows}
    fig, axes = plt.subplots(1, len(AUCS), figsize=(5 * len(AUCS), 4))
    width = 0.8 / max(len(methods), 1)
    for ax, key in zip(axes, AUCS):
        for j, method in enumerate(methods):
            got = [by.get((a, method), {}) for a in archs]
            xs = np.arange(len(archs)) + (j - (len(methods) - 1) / 2) * width
            ax.bar(xs, [_value(r, f"{key}_mean") for r in got], width, yerr=[_std(r, f"{key}_std") for r in got],
                   capsize=3, label=method)
        ax.set_xticks(range(len(archs)))
        ax.set_xticklabels(archs, rotation=20, fontsize=8)
        means = [_value(r, f"{key}_mean") for r in rows if not math.isnan(_value(r, f"{key}_mean"))]
        if means:
            ax.set_ylim(min(means) - 0.02, max(means) + 0.02)
        ax.set_ylabel(f"test {BY_KEY[key].label}")
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=8)
    return _save(fig, f"PWiseR: {TITLES['grid']}", path)


def plot_noise(rows: Sequence[Dict[str, Any]], path: str) -> str:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for method in dict.fromkeys(r["param_method"] for r in rows):
        got = sorted((r for r in rows if r["param_method"] == method), key=lambda r: r["param_noisy_click_share"])
        xs = [r["param_noisy_click_share"] for r in got]
        for key, marker in zip(AUCS, "osd"):
            axes[0].errorbar(xs, [_value(r, f"{key}_mean") for r in got], yerr=[_std(r, f"{key}_std") for r in got],
                             marker=marker, capsize=3, linestyle="-" if method == "BCE" else "--",
                             label=f"{BY_KEY[key].label}, {method}")
    diff = sorted((r for r in rows if "ctr_auc_diff" in r), key=lambda r: r["param_noisy_click_share"])
    for key, marker in zip(AUCS, "osd"):
        axes[1].errorbar([r["param_noisy_click_share"] for r in diff], [_value(r, f"{key}_diff") for r in diff],
                         yerr=[_std(r, f"{key}_diff_std") for r in diff], marker=marker, capsize=3,
                         label=BY_KEY[key].label)
    axes[1].axhline(0.0, color="grey", linewidth=0.8)
    axes[0].set_ylabel("test AUC")
    axes[1].set_ylabel("AUC difference, BCE + PWiseR - BCE (paired)")
    for ax in axes:
        ax.set_xlabel("noisy-click share")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, f"PWiseR: {TITLES['noise']}", path)


def plot_margins(rows: Sequence[Dict[str, Any]], path: str) -> Optional[str]:
    grid = [r for r in rows if isinstance(r.get("param_m1"), float)]
    if not grid:
        return None
    plt = pyplot()
    lambdas = sorted({r["param_lambda"] for r in grid})
    margins = sorted({r["param_m1"] for r in grid})
    fig, axes = plt.subplots(1, len(AUCS), figsize=(4.5 * len(AUCS), 3.8))
    for ax, key in zip(axes, AUCS):
        z = np.full((len(lambdas), len(margins)), np.nan)
        for r in grid:
            z[lambdas.index(r["param_lambda"]), margins.index(r["param_m1"])] = _value(r, f"{key}_diff")
        bound = np.nanmax(np.abs(z)) if np.isfinite(z).any() else 1.0
        image = ax.imshow(z, cmap="RdBu", vmin=-bound, vmax=bound, origin="lower", aspect="auto")
        for i in range(len(lambdas)):
            for j in range(len(margins)):
                ax.text(j, i, "n/a" if np.isnan(z[i, j]) else f"{z[i, j]:+.4f}", ha="center", va="center", fontsize=7)
        ax.set_xticks(range(len(margins)))
        ax.set_xticklabels([f"{m:g}" for m in margins])
        ax.set_yticks(range(len(lambdas)))
        ax.set_yticklabels([f"{v:g}" for v in lambdas])
        ax.set_xlabel("m1 (m2 = 2 m1)")
        ax.set_ylabel("lambda")
        ax.set_title(f"{BY_KEY[key].label} - BCE", fontsize=9)
        fig.colorbar(image, ax=ax, fraction=0.046)
    return _save(fig, f"PWiseR: {TITLES['margins']}", path)


def _save(fig, title: str, path: str) -> str:
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot().close(fig)
    return path


def build_pwiser_report(protocol: Protocol, settings: Sequence[Setting], results: Mapping[Any, Dict[str, Any]],
                        out_dir: str, opts: Options) -> List[str]:
    """Writes the tables and plots of the parts that have settings in ``settings``; returns the paths."""
    os.makedirs(out_dir, exist_ok=True)
    files: List[str] = []
    sections = [f"# {protocol.title}\n"]
    plotters = {"grid": plot_grid, "noise": plot_noise, "margins": plot_margins}
    plot_names = {"grid": "grid_auc.png", "noise": "noise_lift.png", "margins": "margins_heatmap.png"}
    for part in PARTS:
        chosen = settings_of_part(settings, part)
        if not chosen:
            continue
        sub = dataclasses.replace(protocol, title=f"{protocol.title}: {TITLES[part]}")
        rows = tables.aggregate(sub, chosen, results)
        files.append(tables.write_csv(rows, os.path.join(out_dir, f"results_{part}.csv")))
        files.append(tables.write_markdown(sub, rows, os.path.join(out_dir, f"results_{part}.md")))
        sections.append(f"## {TITLES[part]}\n\n{tables.markdown(sub, rows)}")
        plotted = plotters[part](rows, os.path.join(out_dir, plot_names[part]))
        if plotted:
            files.append(plotted)
    path = os.path.join(out_dir, "results.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(sections))
    return [path] + files
