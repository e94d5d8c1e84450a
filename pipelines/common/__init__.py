"""The Beam stages every tfrec pipeline builds on (Criteo, multi-task, hybrid samples).

* :mod:`pipelines.common.read`: the chunked, splittable, bytes-preserving line reader.
* :mod:`pipelines.common.split`: the keyed-hash split and shard of a row.
* :mod:`pipelines.common.stages`: the parse step (batches of serialized examples, dead letters, per-bundle
  statistics and vocabulary counts) and the writes of examples and dead letters.
* :mod:`pipelines.common.sink`: the shard sink (parts per bundle, no grouping of records: flat memory; the records
  each file holds, for the accounting) and the TFRecord framing.
* :mod:`pipelines.common.combiners` and :mod:`pipelines.common.vocab`: the statistics and the vocabularies
  (``CombinePerKey`` per (field, bucket of values), the min-count cut before any sort).
* :mod:`pipelines.common.rows`: the row pipelines' skeleton (build, counts, accounting against the sinks).
* :mod:`pipelines.common.runner`: pipeline options (refused DirectRunner modes, staging for remote workers),
  progress lines, the run.
* :mod:`pipelines.common.files`: file helpers through Beam's ``FileSystems`` (any scheme a runner supports).

Each format is a small module on top: :mod:`pipelines.criteo`, :mod:`pipelines.multitask`,
:mod:`pipelines.hybrid_samples`.
"""
