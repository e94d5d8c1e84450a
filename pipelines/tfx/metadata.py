"""The pipeline's metadata store (SQLite): runs, executions and their artifacts, and cache lookups.

Tables:

* ``runs``: ``run_id``, ``pipeline``, ``status`` (``RUNNING``, ``COMPLETE``, ``FAILED``), ``parameters`` (the
  pipeline config), ``package_versions``, ``start_time``, ``end_time``, ``error``.
* ``executions``: one per component per run: ``component``, ``cache_key``, ``status`` (``RUNNING``,
  ``COMPLETE``, ``CACHED``, ``FAILED``), ``parameters``, ``inputs`` and ``outputs`` (artifact dicts by name),
  ``start_time``, ``end_time``, ``error``.

The cache key of an execution is the SHA-256 of the component name, its parameters, the fingerprints of its
input artifacts and the code version (see :func:`cache_key`). A COMPLETE execution with the same key is reused.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from typing import Any, Dict, List, Mapping, Optional

from pipelines.tfx.artifacts import Artifact, from_dict

RUNNING, COMPLETE, CACHED, FAILED = "RUNNING", "COMPLETE", "CACHED", "FAILED"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
  run_id TEXT PRIMARY KEY, pipeline TEXT, status TEXT, parameters TEXT, package_versions TEXT,
  start_time REAL, end_time REAL, error TEXT);
CREATE TABLE IF NOT EXISTS executions (
  id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT, component TEXT, cache_key TEXT, status TEXT,
  parameters TEXT, inputs TEXT, outputs TEXT, start_time REAL, end_time REAL, error TEXT);
CREATE INDEX IF NOT EXISTS executions_key ON executions (cache_key, status);
"""


def cache_key(component: str, parameters: Mapping[str, Any], inputs: Mapping[str, Optional[Artifact]],
              code_version: str) -> str:
    """SHA-256 of the component name, its parameters, its inputs' fingerprints and the code version."""
    payload = {"component": component, "parameters": parameters, "code": code_version,
               "inputs": {k: (a.fingerprint if a is not None else None) for k, a in sorted(inputs.items())}}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def _artifacts_json(artifacts: Mapping[str, Optional[Artifact]]) -> str:
    return json.dumps({k: (a.to_dict() if a is not None else None) for k, a in artifacts.items()}, sort_keys=True)


def _artifacts(text: Optional[str]) -> Dict[str, Optional[Artifact]]:
    return {k: (from_dict(v) if v is not None else None) for k, v in json.loads(text or "{}").items()}


class MetadataStore:
    """A SQLite metadata store at ``path`` (created on first use)."""

    def __init__(self, path: str):
        self.path = path
        self._db = sqlite3.connect(path, timeout=30.0, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    # ------------------------------------------------------------------------------------------- runs

    def start_run(self, run_id: str, pipeline: str, parameters: Mapping[str, Any],
                  package_versions: Mapping[str, str]) -> None:
        self._db.execute("INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, NULL, NULL)",
                         (run_id, pipeline, RUNNING, json.dumps(parameters, sort_keys=True, default=str),
                          json.dumps(dict(package_versions), sort_keys=True), time.time()))

    def reopen_run(self, run_id: str) -> None:
        self._db.execute("UPDATE runs SET status = ?, end_time = NULL, error = NULL WHERE run_id = ?",
                         (RUNNING, run_id))

    def end_run(self, run_id: str, status: str, error: str = "") -> None:
        self._db.execute("UPDATE runs SET status = ?, end_time = ?, error = ? WHERE run_id = ?",
                         (status, time.time(), error or None, run_id))

    def run(self, run_id: str) -> Optional[Dict[str, Any]]:
        row = self._db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return dict(row) if row else None

    def last_run(self, pipeline: str, status: Optional[str] = None) -> Optional[Dict[str, Any]]:
        """The newest run of ``pipeline`` (with ``status``, when given)."""
        if status is None:
            row = self._db.execute("SELECT * FROM runs WHERE pipeline = ? ORDER BY start_time DESC LIMIT 1",
                                   (pipeline,)).fetchone()
        else:
            row = self._db.execute("SELECT * FROM runs WHERE pipeline = ? AND status = ? ORDER BY start_time DESC "
                                   "LIMIT 1", (pipeline, status)).fetchone()
        return dict(row) if row else None

    # ------------------------------------------------------------------------------------------- executions

    def start_execution(self, run_id: str, component: str, key: str, parameters: Mapping[str, Any],
                        inputs: Mapping[str, Optional[Artifact]]) -> int:
        cur = self._db.execute(
            "INSERT INTO executions (run_id, component, cache_key, status, parameters, inputs, outputs, start_time)"
            " VALUES (?, ?, ?, ?, ?, ?, '{}', ?)",
            (run_id, component, key, RUNNING, json.dumps(parameters, sort_keys=True, default=str),
             _artifacts_json(inputs), time.time()))
        return int(cur.lastrowid)

    def end_execution(self, execution_id: int, status: str, outputs: Mapping[str, Artifact] = None,
                      error: str = "") -> None:
        self._db.execute("UPDATE executions SET status = ?, outputs = ?, end_time = ?, error = ? WHERE id = ?",
                         (status, _artifacts_json(outputs or {}), time.time(), error or None, execution_id))

    def executions(self, run_id: str) -> List[Dict[str, Any]]:
        rows = self._db.execute("SELECT * FROM executions WHERE run_id = ? ORDER BY id", (run_id,)).fetchall()
        out = []
        for r in rows:
            d = dict(r)
            d["inputs"], d["outputs"] = _artifacts(d["inputs"]), _artifacts(d["outputs"])
            out.append(d)
        return out

    def cached_outputs(self, key: str) -> Optional[Dict[str, Artifact]]:
        """The outputs of the latest COMPLETE execution with cache key ``key``, or None."""
        row = self._db.execute("SELECT outputs FROM executions WHERE cache_key = ? AND status = ? "
                               "ORDER BY id DESC LIMIT 1", (key, COMPLETE)).fetchone()
        return _artifacts(row["outputs"]) if row else None

    def latest_output(self, component: str, name: str, where=None) -> Optional[Artifact]:
        """The output ``name`` of the newest COMPLETE or CACHED ``component`` execution that satisfies ``where``."""
        rows = self._db.execute("SELECT outputs FROM executions WHERE component = ? AND status IN (?, ?) "
                                "ORDER BY id DESC", (component, COMPLETE, CACHED)).fetchall()
        for r in rows:
            a = _artifacts(r["outputs"]).get(name)
            if a is not None and (where is None or where(a)):
                return a
        return None
