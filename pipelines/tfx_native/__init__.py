"""tfrec as real TFX 1.15 components and pipelines (the ``tfx`` extra).

    pip install --ignore-requires-python -c constraints-tfx.txt -e ".[tfx]"

* :mod:`pipelines.tfx_native.components`: tfrec's parts as TFX components that a TFX user drops into a pipeline:
  ``TfrecExampleGen`` (a dataset family's Beam pipeline -> a standard Examples artifact with tfrec's side files),
  ``ValidationGate`` (TFDV: this data against the last validated data's schema, the labels' drift through TFDV's
  Jensen-Shannon drift comparator; stops the run on anomalies), ``ListwiseStatisticsGen`` and
  ``ListwiseExampleValidator`` (hybrid-sample lists, which TFDV does not read), ``TfrecEvaluator`` (tfrec's exact
  metrics; a standard ModelBlessing that the stock Pusher reads).
* :mod:`pipelines.tfx_native.pipeline`: the pipeline of a family from a tfrec pipeline config
  (``configs/pipeline_*.yaml``), run under ``LocalDagRunner`` with an ml-metadata SQLite store and TFX's caching
  (``tfrec pipeline run --engine tfx``), or compiled for Kubeflow Pipelines v2 / Vertex AI.

The Trainer is TFX's stock ``Trainer`` with ``module_file`` = ``tfrec/trainer_module.py`` and the Pusher is TFX's
stock ``Pusher``. The logic of every component is the one the home-made runner (:mod:`pipelines.tfx`) calls.
Nothing in ``tfrec``, ``export`` or ``serving`` imports this package, so tfrec installs and runs without TFX.
"""
