"""The multi-task Beam pipeline: AliExpress / Ali-CCP CSV -> GZIP TFRecords with click and conversion labels.

Public API: :func:`run` (``cfg: tfrec.config.PrepareConfig -> dict``, ``cfg.input_format`` ``aliexpress`` or
``aliccp``), :func:`parse_line` (``line, layout -> Row | Rejection``), :func:`layout_from_header`,
:data:`REASONS`. Names load lazily, so :mod:`pipelines.multitask.parse` imports without Apache Beam.
"""

import importlib

_EXPORTS = {"run": "pipeline", "build": "pipeline", "finalize": "pipeline", "to_example": "pipeline",
            "parse_line": "parse", "layout_from_header": "parse", "Row": "parse", "Layout": "parse",
            "REASONS": "parse", "FORMATS": "parse", "LayoutError": "parse"}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + __all__)
