"""The KDD 2024 protocols' figures, from what their runs record (matplotlib, Agg backend), next to the table's
``metrics.png`` and ``lift.png`` (:mod:`tfrec.experiments.core.plots`):

* ``grad_neg_epoch1.png``: per-batch mean |dL/dz| over negatives in the first epoch, mean over seeds (Fig. 2);
* ``grad_boxplot.png``: the distribution over first-epoch batches of that value, per setting (Fig. 7 left);
* ``train_bce.png``: training BCE (Eq. 15) along training steps, mean over seeds (Fig. 1a, 6);
* ``calibration_bias.png``: bias per pCTR bucket of equal positive weight on test, mean over seeds (Fig. 8).

The paper's figures that the runs record data for, each as a PNG with the CSV of its plotted numbers beside it:

* ``fig1a_bce.png`` / ``.csv``: BCE along epochs per setting (Fig. 1a): the validation BCE (the weighted logloss
  ``sum w BCE / sum w`` that Keras reports as ``val_weighted_logloss`` after each epoch, from the run's
  ``history.csv``) and the training BCE of Eq. 15 (the epoch's mean of ``train_bce.csv``), mean over seeds.
* ``fig1b_landscape.png`` / ``.csv``: the BCE around the trained head (Fig. 1b; the grid each run writes,
  :mod:`tfrec.experiments.kdd.landscape`), mean over seeds: a contour map per setting and the ``b = 0`` slice
  closest to zero (along the trained weights' direction) of every setting in one panel.
* ``fig3_layer_grad_norms.png`` / ``.csv``: the gradient norms of the bottom DNN layer (``grad_norm_dnn0``) and of
  the first cross layer (``grad_norm_cross0``) along training (Fig. 3; other models: their first two
  ``grad_norm_*`` groups). The per-batch series of ``gradient_diagnostics.csv`` is averaged over seeds (cut to
  the shortest run), then cut into windows of ``ceil(batches / 50)`` batches; each window gives its average and
  90th percentile over batches (the paper's "avg." and "90 pct." lines; its text does not say over what the
  statistics run, tfrec reads them as statistics over batches).
* ``fig9_grad_neg_hist.png`` / ``.csv``: the distribution of the negatives' ``|dL/dz|`` (Fig. 9): the
  ``grad_neg_hist*`` counts (40 log-spaced bins, ``tfrec.metrics.gradients.log_histogram``) summed over the first
  epoch's batches and the seeds, normalised to frequencies.
"""

from __future__ import annotations

import math
import os
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from tfrec.experiments.core.plots import plot_lift, plot_metrics, pyplot, runs_of, save_figure, write_rows
from tfrec.experiments.core.registry import Protocol
from tfrec.experiments.kdd.runner import TRAIN_BCE_CSV, read_csv

def _mean_curve(curves: List[List[float]]) -> np.ndarray:
    n = min(len(c) for c in curves)
    return np.nanmean(np.asarray([c[:n] for c in curves], dtype=np.float64), axis=0)


def _first_epoch_grads(run_dir: str) -> List[float]:
    rows = read_csv(os.path.join(run_dir, "gradient_diagnostics.csv"))
    return [r["grad_neg_mean"] for r in rows if r.get("epoch") == 0]


def _plot_mean_curves(protocol: Protocol, settings, results, path: str,
                      curve: Callable[[Dict[str, Any]], List[float]], xlabel: str, ylabel: str,
                      log_y: bool = False, zero_line: bool = False, **line) -> Optional[str]:
    """One line per setting: the mean over its seeds (:func:`_mean_curve`, cut to the shortest) of each run's
    curve.

    Args:
      protocol: the protocol (its title is the plot's).
      settings: the settings, in legend order.
      results: cell -> run result, as the runner returns them.
      path: the PNG to write.
      curve: a run result -> its curve (a run without one, or with an empty one, is left out).
      xlabel / ylabel: the axis labels.
      log_y: a log y axis.
      zero_line: a grey horizontal line at 0.
      **line: matplotlib ``plot`` arguments of every line.

    Returns:
      ``path``, or None (nothing written) when no setting has a curve.
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    drawn = 0
    for s in settings:
        curves = [c for c in (curve(r) for r in runs_of(results, s.name)) if c]
        if curves:
            ax.plot(_mean_curve(curves), label=s.name, **line)
            drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    if log_y:
        ax.set_yscale("log")
    if zero_line:
        ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    ax.set_title(protocol.title, fontsize=10)
    return save_figure(fig, path)


def plot_curves(protocol: Protocol, settings, results, path: str, kind: str) -> Optional[str]:
    if kind == "grad":
        return _plot_mean_curves(protocol, settings, results, path, lambda r: _first_epoch_grads(r["run_dir"]),
                                 "batch (first epoch)", "mean |dL/dz| over negatives", log_y=True, lw=1.2)
    return _plot_mean_curves(
        protocol, settings, results, path,
        lambda r: [row["train_bce"] for row in read_csv(os.path.join(r["run_dir"], TRAIN_BCE_CSV))],
        "logged interval (training steps)", "training BCE (Eq. 15)", lw=1.2)


def plot_grad_boxplot(protocol: Protocol, settings, results, rows, path: str) -> Optional[str]:
    plt = pyplot()
    data, labels = [], []
    for s in settings:
        values = [v for r in runs_of(results, s.name) for v in _first_epoch_grads(r["run_dir"])]
        if values:
            data.append(values)
            labels.append(s.name)
    if not data:
        return None
    fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(data) + 2), 4.2))
    ax.boxplot(data, showfliers=False)
    ax.set_xticks(range(1, len(labels) + 1))
    ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("mean |dL/dz| over negatives, per batch (epoch 1)")
    auc_key = next((k for k in protocol.metric_keys if k.startswith("auc")), None)
    if auc_key:
        by_name = {r["setting"]: r for r in rows}
        twin = ax.twinx()
        twin.plot(range(1, len(labels) + 1), [by_name[n].get(f"{auc_key}_mean", math.nan) for n in labels],
                  color="tab:red", marker="o")
        twin.set_ylabel(protocol.metric(auc_key).label, color="tab:red")
    ax.set_title(protocol.title, fontsize=10)
    return save_figure(fig, path)


def plot_calibration(protocol: Protocol, settings, results, path: str) -> Optional[str]:
    return _plot_mean_curves(protocol, settings, results, path,
                             lambda r: [b["bias"] for b in r["run"].get("calibration", [])],
                             "pCTR bucket (equal positive weight, test)", "bias = sum w(p - y) / sum w y",
                             zero_line=True, marker=".", lw=1.0)


def _valid_bce(run: Dict[str, Any]) -> List[float]:
    """The validation BCE after each epoch: ``history.csv`` (every epoch, across a resume), else the history."""
    rows = read_csv(os.path.join(run["run_dir"], "history.csv"))
    if rows and "val_weighted_logloss" in rows[0]:
        by_epoch = {int(r["epoch"]): r["val_weighted_logloss"] for r in rows}
        return [by_epoch[e] for e in sorted(by_epoch)]
    return list(run["run"].get("history", {}).get("val_weighted_logloss", []))


def _train_bce(run: Dict[str, Any]) -> List[float]:
    per_epoch = (run["run"].get("train_bce") or {}).get("per_epoch") or {}
    return [per_epoch[k] for k in sorted(per_epoch, key=int)]


def plot_bce_epochs(protocol: Protocol, settings, results, path: str) -> List[str]:
    """Fig. 1a: validation (solid) and training (dashed) BCE after each epoch per setting, mean over seeds;
    writes the PNG and its CSV (``setting, epoch, valid_bce, train_bce, seeds``); [] when no run has a curve."""
    plt = pyplot()
    table = []
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, s in enumerate(settings):
        runs = runs_of(results, s.name)
        valid = [c for c in (_valid_bce(r) for r in runs) if c]
        if not valid:
            continue
        train = [c for c in (_train_bce(r) for r in runs) if c]
        v = _mean_curve(valid)
        t = _mean_curve(train) if train else np.full(len(v), np.nan)
        epochs = np.arange(1, len(v) + 1)
        color = f"C{i % 10}"
        ax.plot(epochs, v, marker="o", color=color, label=f"[validation] {s.name}")
        ax.plot(epochs[:len(t)], t[:len(v)], marker=".", linestyle="--", color=color, label=f"[training] {s.name}")
        table += [(s.name, int(e), float(v[e - 1]), float(t[e - 1]) if e - 1 < len(t) else math.nan, len(valid))
                  for e in epochs]
    if not table:
        plt.close(fig)
        return []
    ax.set_xlabel("epoch")
    ax.set_ylabel("BCE: validation sum w BCE / sum w (solid),\ntraining Eq. 15 sum w BCE / N (dashed)", fontsize=8)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    ax.set_title(f"{protocol.title}: BCE along epochs (Fig. 1a)", fontsize=10)
    return [save_figure(fig, path), write_rows(os.path.splitext(path)[0] + ".csv",
                                               ("setting", "epoch", "valid_bce", "train_bce", "seeds"), table)]


def plot_landscape(protocol: Protocol, settings, results, path: str) -> List[str]:
    """Fig. 1b: per setting, the mean over seeds of its runs' ``landscape.csv`` grids; the PNG and its CSV
    (``setting, a, b, bce, seeds``); [] when no run has a grid."""
    from tfrec.experiments.kdd.landscape import read_landscape

    grids = {}
    for s in settings:
        found = [g for g in (read_landscape(r["run_dir"]) for r in runs_of(results, s.name)) if g is not None]
        if found:
            grids[s.name] = (found[0]["a"], found[0]["b"], np.mean([g["bce"] for g in found], axis=0), len(found))
    if not grids:
        return []
    plt = pyplot()
    fig, axes = plt.subplots(1, len(grids) + 1, figsize=(4.6 * (len(grids) + 1), 4))
    table = []
    for i, (ax, (name, (a, b, bce, n))) in enumerate(zip(axes, grids.items())):
        cs = ax.contourf(a, b, bce, levels=20, cmap="viridis")
        fig.colorbar(cs, ax=ax)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("a (along the trained head)")
        ax.set_ylabel("b (orthogonal, random)")
        k = int(np.argmin(np.abs(b)))
        axes[-1].plot(a, bce[k], color=f"C{i % 10}", label=f"{name} (b = {b[k]:.2g})")
        table += [(name, float(a[j]), float(b[r]), float(bce[r, j]), n) for r in range(len(b)) for j in range(len(a))]
    axes[-1].set_xlabel("a")
    axes[-1].set_ylabel("BCE (Eq. 15, one test batch)")
    axes[-1].legend(fontsize=7)
    axes[-1].grid(alpha=0.3)
    fig.suptitle(f"{protocol.title}: loss landscape of the head (Fig. 1b)", fontsize=10)
    return [save_figure(fig, path), write_rows(os.path.splitext(path)[0] + ".csv",
                                               ("setting", "a", "b", "bce", "seeds"),
                                          table)]


def _layer_columns(rows: List[Dict[str, float]]) -> List[str]:
    names = [k for k in rows[0] if k.startswith("grad_norm_") and k != "grad_norm_global"]
    wanted = [k for k in ("grad_norm_dnn0", "grad_norm_cross0") if k in names]
    return wanted or names[:2]


def layer_grad_windows(series: np.ndarray, windows: int = 50) -> List[Tuple[int, int, float, float]]:
    """``(first batch, last batch, mean, 90th percentile)`` of consecutive windows of ``ceil(n / windows)``
    batches of a per-batch series (NumPy's default percentile)."""
    size = max(1, math.ceil(len(series) / windows))
    out = []
    for start in range(0, len(series), size):
        w = series[start:start + size]
        out.append((start, start + len(w) - 1, float(np.mean(w)), float(np.percentile(w, 90))))
    return out


def plot_layer_grad_norms(protocol: Protocol, settings, results, path: str) -> List[str]:
    """Fig. 3: the bottom DNN layer's and the first cross layer's gradient norms along training (window average
    and 90th percentile per setting, see the module docstring); the PNG and its CSV (``setting, layer,
    first_batch, last_batch, mean, p90, seeds``); [] without gradient diagnostics."""
    per_setting = {}
    for s in settings:
        runs = [read_csv(os.path.join(r["run_dir"], "gradient_diagnostics.csv")) for r in runs_of(results, s.name)]
        runs = [r for r in runs if r]
        if runs:
            per_setting[s.name] = runs
    if not per_setting:
        return []
    layers = _layer_columns(next(iter(per_setting.values()))[0])
    if not layers:
        return []
    plt = pyplot()
    fig, axes = plt.subplots(1, len(layers), figsize=(6 * len(layers), 4.2))
    axes = np.atleast_1d(axes)
    table = []
    for ax, layer in zip(axes, layers):
        for i, (name, runs) in enumerate(per_setting.items()):
            curves = [[r[layer] for r in rows if layer in r] for rows in runs]
            curves = [c for c in curves if c]
            if not curves:
                continue
            windows = layer_grad_windows(_mean_curve(curves))
            mid = [(a + b) / 2 for a, b, _, _ in windows]
            ax.plot(mid, [w[2] for w in windows], color=f"C{i % 10}", label=f"{name}: avg.")
            ax.plot(mid, [w[3] for w in windows], color=f"C{i % 10}", linestyle="--", label=f"{name}: 90 pct.")
            table += [(name, layer[len("grad_norm_"):], a, b, m, p, len(curves)) for a, b, m, p in windows]
        ax.set_xlabel("batch")
        ax.set_ylabel(f"gradient norm ({layer[len('grad_norm_'):]})")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{protocol.title}: layer gradient norms (Fig. 3)", fontsize=10)
    return [save_figure(fig, path),
            write_rows(os.path.splitext(path)[0] + ".csv",
                       ("setting", "layer", "first_batch", "last_batch", "mean", "p90", "seeds"), table)]


def plot_grad_histogram(protocol: Protocol, settings, results, path: str) -> List[str]:
    """Fig. 9: frequency of the negatives' ``|dL/dz|`` per log-spaced bin (first epoch, all seeds) per setting;
    the PNG and its CSV (``setting, bin, low, high, count, frequency``); [] without the histogram columns."""
    from tfrec.metrics.gradients import HIST_NAMES, histogram_edges

    edges = histogram_edges()
    counts = {}
    for s in settings:
        total = np.zeros(len(HIST_NAMES))
        for r in runs_of(results, s.name):
            for row in read_csv(os.path.join(r["run_dir"], "gradient_diagnostics.csv")):
                if row.get("epoch") == 0 and HIST_NAMES[0] in row:
                    total += np.asarray([row[k] for k in HIST_NAMES])
        if total.sum() > 0:
            counts[s.name] = total
    if not counts:
        return []
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    table = []
    for name, total in counts.items():
        freq = total / total.sum()
        ax.stairs(freq, edges, label=name)
        table += [(name, k, float(edges[k]), float(edges[k + 1]), int(total[k]), float(freq[k]))
                  for k in range(len(freq))]
    ax.set_xscale("log")
    ax.set_xlabel("|dL/dz| of a negative sample (epoch 1)")
    ax.set_ylabel("frequency")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax.set_title(f"{protocol.title}: negative-logit gradients (Fig. 9)", fontsize=10)
    return [save_figure(fig, path), write_rows(os.path.splitext(path)[0] + ".csv",
                                               ("setting", "bin", "low", "high", "count", "frequency"), table)]


def plot_all(protocol: Protocol, settings, results, rows, out_dir: str) -> List[str]:
    """Every plot of the module docstring that has data; returns the written paths (PNGs and the figures'
    CSVs)."""
    figures = (plot_bce_epochs(protocol, settings, results, os.path.join(out_dir, "fig1a_bce.png"))
               + plot_landscape(protocol, settings, results, os.path.join(out_dir, "fig1b_landscape.png"))
               + plot_layer_grad_norms(protocol, settings, results,
                                       os.path.join(out_dir, "fig3_layer_grad_norms.png"))
               + plot_grad_histogram(protocol, settings, results, os.path.join(out_dir, "fig9_grad_neg_hist.png")))
    paths = [
        plot_metrics(protocol, settings, rows, os.path.join(out_dir, "metrics.png")),
        plot_lift(protocol, settings, rows, os.path.join(out_dir, "lift.png")),
        plot_curves(protocol, settings, results, os.path.join(out_dir, "grad_neg_epoch1.png"), "grad"),
        plot_grad_boxplot(protocol, settings, results, rows, os.path.join(out_dir, "grad_boxplot.png")),
        plot_curves(protocol, settings, results, os.path.join(out_dir, "train_bce.png"), "bce"),
        plot_calibration(protocol, settings, results, os.path.join(out_dir, "calibration_bias.png")),
    ]
    return [p for p in paths if p] + figures
