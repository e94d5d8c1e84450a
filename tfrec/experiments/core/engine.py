"""Runs a protocol: plans its cells, runs the missing ones (resumable), writes the report and the run record.

``run_protocol`` plans every (setting, seed) cell with its config and the fingerprint of its training run, then
for each cell in order: a finished cell (its ``result.json``) is skipped; a cell whose run another cell already
finished (same fingerprint: same config and data) reuses that run; otherwise the protocol's cell runner trains
and evaluates it. Progress goes to ``printer``: one line per cell with the time left (the mean time of the cells
computed so far times the runs still to compute), then the training's own epoch lines, prefixed by the cell.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import os
import platform
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

from tfrec.config import RunConfig, load_config
import tfrec.experiments.core.registry as registry
from tfrec.experiments.core.cell import run_cell
from tfrec.experiments.core.report import build_report
from tfrec.experiments.core.store import Cell, Store, fingerprint, read_json, write_json

DEFAULT_SEED = 2020  # the paper's seeds are 2020-2024


@dataclasses.dataclass
class PlannedCell:
    cell: Cell
    setting: registry.Setting
    cfg: RunConfig
    fingerprint: str


def seeds_of(n: int, first: int = DEFAULT_SEED) -> List[int]:
    """``n`` consecutive seeds from ``first`` (2020, 2021, ...)."""
    if n < 1:
        raise ValueError(f"`seeds` must be >= 1. Received: seeds={n}")
    return list(range(first, first + n))


def cell_config(base: RunConfig, setting: registry.Setting, seed: int, data_dir: str) -> RunConfig:
    """The validated config of one cell: ``base`` + the setting's overrides + its data dir and seed."""
    overrides = list(setting.overrides) + [f"data.dir='{data_dir}'", f"train.seed={seed}"]
    return load_config(None, overrides, base=copy.deepcopy(base))


def selected_settings(protocol: registry.Protocol, opts: registry.Options,
                      only: Optional[Sequence[str]] = None) -> List[registry.Setting]:
    """The protocol's settings, or those named in ``only`` (an unknown name is an error)."""
    settings = protocol.settings(opts)
    known = [s.name for s in settings]
    if only:
        unknown = sorted(set(only) - set(known))
        if unknown:
            raise ValueError(f"protocol {protocol.name!r} has no setting {unknown[0]!r}; its settings: {known}")
        settings = [s for s in settings if s.name in only]
    return settings


def plan(protocol: registry.Protocol, base: RunConfig, data_dir: str, seeds: Sequence[int], store: Store,
         opts: registry.Options, only: Optional[Sequence[str]] = None,
         datasets: Optional[Dict[str, str]] = None) -> List[PlannedCell]:
    settings = selected_settings(protocol, opts, only)
    out = []
    for setting in settings:
        setting_data = (datasets or {})[setting.dataset] if setting.dataset else data_dir
        for seed in seeds:
            cfg = cell_config(base, setting, seed, setting_data)
            fp = fingerprint(cfg.to_dict(), setting_data, {"buckets": opts.buckets})
            out.append(PlannedCell(Cell(protocol.name, setting.name, seed), setting, cfg, fp))
    return out


def _versions() -> Dict[str, str]:
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for module in ("tensorflow", "tf_keras", "numpy", "scipy", "sklearn", "matplotlib", "apache_beam"):
        try:
            out[module] = __import__(module).__version__
        except Exception:  # noqa: BLE001 - a missing optional package is recorded as such
            out[module] = "not installed"
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        out["tfrec_commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                                             timeout=10).stdout.strip() or "unknown"
    except Exception:  # noqa: BLE001
        out["tfrec_commit"] = "unknown"
    return out


def _shown(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.5f}"


def _prefixed(printer: Callable[[str], None], prefix: str) -> Callable[[str], None]:
    return lambda line: printer(f"{prefix} {line.strip()}")


def run_protocol(name: str, data_dir: str, seeds: Sequence[int], out_dir: str, base: RunConfig,
                 opts: registry.Options = registry.Options(), only: Optional[Sequence[str]] = None,
                 printer: Callable[[str], None] = print) -> Dict[str, Any]:
    """Runs protocol ``name`` on the prepared dataset ``data_dir`` for ``seeds``; see the module docstring.

    Args:
      name: a registered protocol.
      data_dir: prepared dataset directory (``tfrec prepare``).
      seeds: training seeds (one cell per setting and seed).
      out_dir: the experiment's output directory (shared by protocols; see ``tfrec.experiments.core.store``).
      base: the config every cell starts from.
      opts: protocol options.
      only: run only these settings (by name).
      printer: progress output.

    Returns:
      ``{"cells", "computed", "reused", "skipped", "wall_seconds", "files"}``.
    """
    import tfrec.data as data_lib

    protocol = registry.get(name)
    data_dir = os.path.abspath(data_dir)
    stats = data_lib.load_stats(data_dir)
    if protocol.check_data is not None:  # the protocol's family's dataset, and what the protocol needs beyond it
        protocol.check_data(data_dir)
    store = Store(out_dir)
    needed = sorted({s.dataset for s in selected_settings(protocol, opts, only) if s.dataset})
    datasets = protocol.datasets(base, opts, store.out_dir, printer, needed) if needed else {}
    cells = plan(protocol, base, data_dir, seeds, store, opts, only, datasets)
    start = time.perf_counter()
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    todo = {c.fingerprint for c in cells if store.cell_result(c.cell) is None and store.run_result(c.fingerprint) is None}
    printer(f"{name}: {protocol.title}; {len(cells)} cells ({len({c.setting.name for c in cells})} settings x "
            f"{len(seeds)} seeds), {len(todo)} training run(s) to compute; output {store.out_dir}")
    counts = {"computed": 0, "reused": 0, "skipped": 0}
    record_cells = []
    compute_seconds = 0.0
    for i, pc in enumerate(cells, 1):
        tag = f"[{name} {i}/{len(cells)} {pc.setting.name} seed {pc.cell.seed}]"
        if store.cell_result(pc.cell) is not None:
            counts["skipped"] += 1
            record_cells.append({"cell": pc.cell.label(), "fingerprint": pc.fingerprint, "status": "finished before"})
            continue
        run = store.run_result(pc.fingerprint)
        status, seconds = "reused", 0.0
        if run is None:
            done = counts["computed"]
            left = (compute_seconds / done * len(todo)) if done else float("nan")
            printer(f"{tag} training {pc.setting.params}; time left ~"
                    + ("?" if left != left else f"{left / 60:.1f} min"))
            t0 = time.perf_counter()
            run = run_cell(protocol, pc.cfg, store.run_dir(pc.fingerprint), _prefixed(printer, tag),
                           buckets=opts.buckets)
            seconds = time.perf_counter() - t0
            compute_seconds += seconds
            run["config"] = pc.cfg.to_dict()
            write_json(store.run_path(pc.fingerprint), run)
            todo.discard(pc.fingerprint)
            status = "computed"
        counts[status] += 1
        write_json(store.cell_path(pc.cell), {
            "protocol": name, "setting": pc.setting.name, "seed": pc.cell.seed, "params": pc.setting.params,
            "baseline": pc.setting.baseline, "fingerprint": pc.fingerprint, "run_dir": store.run_dir(pc.fingerprint),
            "status": status, "run": run})
        if protocol.summary is not None:
            shown_text = protocol.summary(run)
        else:
            shown = protocol.metrics[:2]
            shown_text = ", ".join(f"{m.label} {_shown(registry.metric_value(run, m))}" for m in shown)
        printer(f"{tag} {status}: {shown_text} ({seconds:.0f}s)")
        record_cells.append({"cell": pc.cell.label(), "fingerprint": pc.fingerprint, "status": status,
                             "seconds": seconds})

    results = {pc.cell: store.cell_result(pc.cell) for pc in cells}
    report = protocol.report or build_report
    report_dir = store.report_dir(name)
    settings = list({pc.setting.name: pc.setting for pc in cells}.values())
    files = report(protocol, settings, results, report_dir, opts)
    wall = time.perf_counter() - start
    record = {
        "protocol": name, "title": protocol.title, "options": dataclasses.asdict(opts), "seeds": list(seeds),
        "settings_run": list(only) if only else None, "data_dir": data_dir, "data_stats": stats,
        "datasets": datasets,
        "base_config": base.to_dict(), "versions": _versions(), "argv": sys.argv, "started": started,
        "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "wall_seconds": wall, "compute_seconds": compute_seconds, "counts": counts, "cells": record_cells,
        "files": [os.path.relpath(f, report_dir) for f in files],
    }
    previous = read_json(os.path.join(report_dir, "run_record.json"))
    if previous:
        record["previous_runs"] = previous.pop("previous_runs", []) + [
            {k: previous.get(k) for k in ("started", "finished", "wall_seconds", "counts")}]
    write_json(os.path.join(report_dir, "run_record.json"), record)
    printer(f"{name}: done in {wall / 60:.1f} min ({counts['computed']} computed, {counts['reused']} reused, "
            f"{counts['skipped']} finished before); report in {report_dir}")
    return {"cells": len(cells), **counts, "wall_seconds": wall, "files": files + [
        os.path.join(report_dir, "run_record.json")]}
