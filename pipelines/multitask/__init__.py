"""The multi-task Beam pipeline: AliExpress / Ali-CCP CSV -> GZIP TFRecords with click and conversion labels.

Public API: :func:`run` (``cfg: tfrec.config.PrepareConfig -> dict``, ``cfg.input_format`` ``aliexpress`` or
``aliccp``), :func:`parse_line` (``line, layout -> Row | Rejection``), :func:`layout_from_header`,
:data:`REASONS`. Names load lazily, so :mod:`pipelines.multitask.parse` imports without Apache Beam.
"""

from pipelines.lazy import lazy_exports

_EXPORTS = {"run": "pipeline", "build": "pipeline", "finalize": "pipeline", "to_example": "pipeline",
            "parse_line": "parse", "layout_from_header": "parse", "Row": "parse", "Layout": "parse",
            "REASONS": "parse", "FORMATS": "parse", "LayoutError": "parse"}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS, globals())
