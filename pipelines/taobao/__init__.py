"""The public Taobao display-ad log (HCCP Table 2) -> requests, DIN examples and HCCP lists.

Public API:

* :func:`run_requests` (``cfg: tfrec.config_taobao.TaobaoConfig -> dict``): pipeline A, raw files (either
  layout) -> requests with their history, point-wise DIN examples, the item table (``pipelines.taobao.pipeline``);
* :func:`run_lists` (``cfg, scorer_dir -> dict``): pipeline B, requests scored by DIN -> one
  ``ExampleListWithContext`` per request (``pipelines.taobao.lists_pipeline``);
* :mod:`pipelines.taobao.parse` (the file layouts and their validators), :mod:`pipelines.taobao.requests`
  (requests and histories of one user), :mod:`pipelines.taobao.lists` (the list of one scored request): pure
  Python, no Beam.

Names are imported lazily, so the pure modules load without Apache Beam.
"""

from pipelines.lazy import lazy_exports

_EXPORTS = {
    "run_requests": "pipeline", "run_lists": "lists_pipeline", "build_requests": "pipeline",
    "build_lists": "lists_pipeline",
    "parse_raw_sample": "parse", "parse_ad": "parse", "parse_profile": "parse", "parse_behavior": "parse",
    "parse_joined": "parse", "REASONS": "parse", "user_requests": "requests", "build_request_list": "lists",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS, globals())
