"""Pipeline components, one module each, in run order.

A component module defines ``NAME``, ``INPUTS`` (input names; the runner wires them), ``parameters(cfg)``
(a JSON-serializable dict: everything besides the inputs that its result depends on) and
``execute(ctx, inputs, params) -> {output name: Artifact}`` writing under ``ctx.output_dir``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Callable

ORDER = ("example_gen", "statistics_gen", "schema_gen", "example_validator", "trainer", "evaluator", "pusher")


class ComponentError(RuntimeError):
    """A component cannot finish; the message says why (one readable paragraph)."""


@dataclasses.dataclass
class Context:
    """What an executing component sees.

    Attributes:
      root: the pipeline root (artifact URIs are relative to it).
      output_dir: this execution's directory, ``<root>/<component>/<run id>/`` (exists, may hold a killed
        attempt's files when resuming).
      run_id: the run's id.
      cfg: the :class:`pipelines.tfx.config.PipelineConfig`.
      printer: progress output.
    """

    root: str
    output_dir: str
    run_id: str
    cfg: object
    printer: Callable[[str], None] = print

    def relative(self, path: str) -> str:
        return os.path.relpath(path, self.root)


def write_json(path: str, value) -> None:
    """Writes strict JSON atomically (temp file + rename): NaN and infinities become null, NumPy scalars numbers
    (:func:`tfrec.jsonio.finite`), other values JSON cannot hold their ``str``."""
    from tfrec.jsonio import finite

    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(finite(value), f, indent=2, sort_keys=True, default=str, allow_nan=False)
    os.replace(tmp, path)


def read_json(path: str):
    with open(path, "r", encoding="utf-8") as f:
        return json.load(f)
