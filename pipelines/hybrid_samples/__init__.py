"""HCCP hybrid multi-level sample construction (section 3.2): cascade logs -> ExampleListWithContext TFRecords.

Public API:

* :func:`run` (``cfg: tfrec.config.HybridSamplesConfig -> dict``): runs the Beam pipeline, checks the request
  accounting, writes ``stats.json`` / ``schema.json`` and returns the stats (:class:`EmptyDatasetError` when
  nothing usable was written, :func:`check_usable`); :func:`build` / :func:`finalize` for callers that own the
  pipeline. :data:`ITEMS_FILE`: the validated item table in the output.
* :func:`chunk_sample`, :func:`chunk_rates`, :func:`arrange`, :func:`diversity_labels`, :func:`sample_pool`,
  :func:`build_list`, :func:`to_example_list`: the per-request sample construction (no Beam).
* :func:`parse_request`, :func:`parse_item`, :data:`REASONS`: the validators and their reason codes.

Names are imported lazily, so the per-request functions load without Apache Beam. See
:mod:`pipelines.hybrid_samples.pipeline` for the output layout and :mod:`pipelines.hybrid_samples.samples` for the
reading of the paper.
"""

from pipelines.lazy import lazy_exports

_EXPORTS = {
    "run": "pipeline", "build": "pipeline", "finalize": "pipeline", "SPLITS": "pipeline",
    "check_usable": "pipeline", "EmptyDatasetError": "pipeline", "ITEMS_FILE": "validate",
    "chunk_sample": "samples", "chunk_rates": "samples", "arrange": "samples", "diversity_labels": "samples",
    "sample_pool": "samples", "sample_uniform": "samples", "build_list": "samples", "to_example_list": "samples",
    "parse_request": "validate", "parse_item": "validate", "REASONS": "validate", "Rejection": "validate",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS, globals())
