"""The resumable store of an experiment: cells, their result files, and the fingerprints of training runs.

Layout under the experiment's output directory ``<out>``::

    cells/<protocol>/<setting>/seed-<seed>/result.json   one finished (protocol, setting, seed) cell
    runs/<fingerprint>/                                 one training run (model dir) and its ``run.json``
    <protocol>/                                         tables, plots and the run record of a protocol

A cell names a training run by the fingerprint of its full run config (everything but the model directory and
the progress output) and of the dataset, so two cells that train the same thing (BCE at beta_pos 0.1 appears in
several protocols) share one run. Files are written atomically (a temporary file, then ``os.replace``), so a
killed experiment leaves either a complete result or none; a rerun skips finished cells, reuses finished runs,
and a run killed mid-training resumes from its ``BackupAndRestore`` backup.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Any, Dict, Optional

from tfrec.jsonio import finite

# Config keys that do not change what a run computes (they change where it writes or what it prints).
_NEUTRAL_KEYS = {("train", "model_dir"), ("train", "verbose"), ("train", "log_every_seconds")}


@dataclasses.dataclass(frozen=True)
class Cell:
    """One (protocol, setting, seed) of an experiment grid."""

    protocol: str
    setting: str
    seed: int

    def label(self) -> str:
        return f"{self.protocol}/{self.setting}/seed-{self.seed}"


def _json_default(value: Any):
    if hasattr(value, "item"):  # NumPy scalars
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def write_json(path: str, payload: Dict[str, Any]) -> None:
    """Writes ``payload`` to ``path`` atomically (NaN written as null)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(finite(json.loads(json.dumps(payload, default=_json_default))), f, indent=2, sort_keys=True,
                  allow_nan=False)
    os.replace(tmp, path)


def read_json(path: str) -> Optional[Dict[str, Any]]:
    """The JSON at ``path``, or None when it does not exist."""
    if not os.path.exists(path):
        return None
    with open(path, "r", encoding="utf-8") as f:
        return json.load(f)


class Store:
    """Paths and finished results under one experiment output directory."""

    def __init__(self, out_dir: str):
        self.out_dir = os.path.abspath(out_dir)

    def cell_dir(self, cell: Cell) -> str:
        return os.path.join(self.out_dir, "cells", cell.protocol, cell.setting, f"seed-{cell.seed}")

    def cell_path(self, cell: Cell) -> str:
        return os.path.join(self.cell_dir(cell), "result.json")

    def run_dir(self, fingerprint: str) -> str:
        return os.path.join(self.out_dir, "runs", fingerprint)

    def run_path(self, fingerprint: str) -> str:
        return os.path.join(self.run_dir(fingerprint), "run.json")

    def report_dir(self, protocol: str) -> str:
        return os.path.join(self.out_dir, protocol)

    def cell_result(self, cell: Cell) -> Optional[Dict[str, Any]]:
        return read_json(self.cell_path(cell))

    def run_result(self, fingerprint: str) -> Optional[Dict[str, Any]]:
        return read_json(self.run_path(fingerprint))


def _file_digest(path: str) -> str:
    if not os.path.exists(path):
        return ""
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def fingerprint(cfg_dict: Dict[str, Any], data_dir: str, extra: Optional[Dict[str, Any]] = None) -> str:
    """A short hash of what a run computes: the config (neutral keys dropped), the dataset and ``extra``.

    The dataset enters by its absolute path and the content of its ``schema.json``, ``stats.json`` and
    ``transform.json`` (a re-prepared dataset gets new fingerprints).
    """
    cfg = json.loads(json.dumps(cfg_dict, default=_json_default))
    for section, key in _NEUTRAL_KEYS:
        cfg.get(section, {}).pop(key, None)
    for section in ("simulation", "prepare", "taobao_sim", "taobao", "din"):  # not read by training
        cfg.pop(section, None)
    cfg.get("data", {}).pop("dir", None)
    data_dir = os.path.abspath(data_dir)
    payload = {
        "config": cfg,
        "data": data_dir,
        "data_files": {n: _file_digest(os.path.join(data_dir, n)) for n in ("schema.json", "stats.json",
                                                                            "transform.json")},
        "extra": extra or {},
    }
    text = json.dumps(payload, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
