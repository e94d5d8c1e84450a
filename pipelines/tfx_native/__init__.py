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

Evaluator: tfrec's pipelines bless with ``TfrecEvaluator``, not with TFX's stock (TFMA) ``Evaluator``, for every
family, because:

* TFMA's AUC is approximated: predictions are counted into 10,000 equal-width bins of [0, 1] and the ROC curve is
  interpolated between them, so a (positive, negative) pair whose scores share a bin counts one half whatever
  their order; tfrec blesses on the exact AUC (the number ``tfrec evaluate`` reports and the papers' tables use).
  The gap is bounded by half the share of such pairs: 2.9e-5 in ``tests/pipelines/tfx_native/test_tfx_stock_trainer.py``
  (286 scores spread over [0.15, 0.35]), more where scores crowd into a narrow band (click-through rates near a
  low base rate), and a floor or a "no worse than the blessed model" test near that size would turn on the
  binning.
* TFMA cannot score the list-wise family: its extractors expect one prediction per input record, while a
  pre-ranking record is one request's ``ExampleListWithContext``, scored through ``score_candidates`` with an item
  mask, and blessing is on the click AUC over the lists' impressions. In a TFX user's pipeline over a stock
  ``ImportExampleGen`` (``FORMAT_PROTO`` over ``tfrec prepare-hybrid`` output) ``TfrecEvaluator`` with
  ``dataset_dir`` = the prepared directory blesses the pre-ranking family before the stock Pusher
  (``tests/pipelines/tfx_native/test_tfx_preranking.py``: a trained Three-Tower blessed and pushed, a constant one
  not blessed and nothing pushed).
* Mixing (TFMA for the point-wise families, tfrec for the list-wise one) would split blessing: two metric
  implementations and two kinds of evaluation output behind one ``ModelBlessing``, and "no worse than the blessed
  model" comparing numbers from different code.

The stock ``Evaluator`` still works with tfrec's models in a TFX user's own pipeline: the point-wise export's
``serving_default`` takes serialized ``tf.Example`` records and returns ``ctr``, so a TFMA ``EvalConfig`` with
``ModelSpec(signature_name="serving_default", label_key="label", prediction_key="ctr",
preprocessing_function_names=[])`` and a ``Resolver`` with ``LatestBlessedModelStrategy`` bless a trained model and
refuse a worse one (``tests/pipelines/tfx_native/test_tfx_stock_trainer.py``). The multi-task export fits TFMA's multi-output
model spec: ``label_keys={"ctr": "click", "cvr": "conversion"}``, ``prediction_keys={"ctr": "ctr", "cvr": "cvr"}``
and ``example_weight_keys={"cvr": "click"}`` (``cvr`` scored over the clicked records, as
:func:`tfrec.metrics.multitask.task_space` scores it), one ``MetricsSpec(output_names=[task])`` per task
(``tests/pipelines/tfx_native/test_tfx_multitask.py``).
"""
