"""The Criteo Beam pipeline: raw Kaggle ``train.txt`` / criteo_x1 CSV -> GZIP TFRecords of ``tf.train.Example``.

Public API:

* :func:`run` (``cfg: tfrec.config.PrepareConfig -> dict``): builds options, runs, waits, checks the row
  accounting, writes ``stats.json`` / ``schema.json`` and returns the stats.
* :func:`build` (``p, cfg, plan=None -> dict of PCollections``): wires the whole pipeline onto ``p``;
  :func:`finalize` (``cfg, plan -> dict``) finishes a run made with it.
* :func:`to_example` (``row, beta_pos -> bytes``): a parsed row as a serialized ``tf.train.Example``.
* :func:`parse_line` (``line: bytes, fmt -> Row | Rejection``): the pure-Python validator.

Names are imported lazily, so ``pipelines.criteo.parse`` (and ``to_example``) load without Apache Beam.
See :mod:`pipelines.criteo.pipeline` for the output layout.
"""

from pipelines.lazy import lazy_exports

_EXPORTS = {
    "run": "pipeline", "build": "pipeline", "finalize": "pipeline", "pipeline_options": "pipeline",
    "plan_inputs": "pipeline", "SPLITS": "pipeline",
    "to_example": "example",
    "parse_line": "parse", "Row": "parse", "Rejection": "parse", "REASONS": "parse",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS, globals())
