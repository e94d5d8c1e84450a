"""HCCP hybrid multi-level sample construction (section 3.2): cascade logs -> ExampleListWithContext TFRecords.

Public API:

* :func:`run` (``cfg: tfrec.config.HybridSamplesConfig -> dict``): runs the Beam pipeline, checks the request
  accounting, writes ``stats.json`` / ``schema.json`` and returns the stats; :func:`build` / :func:`finalize`
  for callers that own the pipeline.
* :func:`chunk_sample`, :func:`chunk_rates`, :func:`arrange`, :func:`diversity_labels`, :func:`sample_pool`,
  :func:`build_list`, :func:`to_example_list`: the per-request sample construction (no Beam).
* :func:`parse_request`, :func:`parse_item`, :data:`REASONS`: the validators and their reason codes.

Names are imported lazily, so the per-request functions load without Apache Beam. See
:mod:`pipelines.hybrid_samples.pipeline` for the output layout and :mod:`pipelines.hybrid_samples.samples` for the
reading of the paper.
"""

import importlib

_EXPORTS = {
    "run": "pipeline", "build": "pipeline", "finalize": "pipeline", "SPLITS": "pipeline",
    "chunk_sample": "samples", "chunk_rates": "samples", "arrange": "samples", "diversity_labels": "samples",
    "sample_pool": "samples", "sample_uniform": "samples", "build_list": "samples", "to_example_list": "samples",
    "parse_request": "validate", "parse_item": "validate", "REASONS": "validate", "Rejection": "validate",
}

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
