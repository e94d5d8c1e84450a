"""Lazy re-exports for the pipeline packages: ``package.name`` imports ``package.<module>`` on first use.

A package's ``__init__`` declares ``{name: module}`` and binds the three results of :func:`lazy_exports`, so
its pure-Python parts (validators, per-row encoders) import without Apache Beam.
"""

from __future__ import annotations

import importlib
from typing import Callable, Dict, List, Tuple


def lazy_exports(package: str, exports: Dict[str, str], namespace: dict) -> Tuple[Callable, Callable, List[str]]:
    """``(__getattr__, __dir__, __all__)`` for ``package`` (PEP 562).

    Args:
      package: the package's ``__name__``.
      exports: public name -> submodule (relative to ``package``) that defines it.
      namespace: the package's ``globals()``; a resolved name is cached there.
    """
    names = sorted(exports)

    def __getattr__(name):
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value
        return value

    def __dir__():
        return sorted(set(namespace) | set(names))

    return __getattr__, __dir__, names
