"""Strict JSON for the metric and summary files tfrec writes.

Python's ``json`` writes a non-finite float as the bare tokens ``NaN`` / ``Infinity``, which are not JSON: other
readers (``jq``, JavaScript, Go, ``json.loads(..., parse_constant=...)`` users) reject the file. A metric that is
undefined (an AUC over one class, a hit rate over an empty popularity octile) is written as ``null`` instead.

Example:
  >>> import json
  >>> json.dumps(finite({"auc": float("nan"), "hit": [0.5, float("inf")]}), allow_nan=False)
  '{"auc": null, "hit": [0.5, null]}'
"""

from __future__ import annotations

import json
import math
import os
from typing import Any


def finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float (also inside dicts, lists and tuples) replaced by ``None`` and
    NumPy scalars turned into Python numbers."""
    if hasattr(value, "item") and not isinstance(value, (dict, list, tuple, str, bytes)):
        try:
            value = value.item()  # NumPy scalar (a NumPy array has item() too, but only for one element)
        except (TypeError, ValueError):
            value = value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def write_json(path: str, value: Any, **kwargs) -> None:
    """Writes ``finite(value)`` as strict JSON (``allow_nan=False``) to ``path``, atomically (temp file + rename).

    ``kwargs`` go to ``json.dump`` (``indent`` defaults to 2).
    """
    kwargs.setdefault("indent", 2)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(finite(value), f, allow_nan=False, **kwargs)
    os.replace(tmp, path)
