"""A pipeline written as a TFX user writes it, with tfrec only as data and as the Trainer's module file: stock
ImportExampleGen over `tfrec prepare` output -> StatisticsGen -> SchemaGen -> ExampleValidator -> Trainer
(module_file = tfrec/trainer_module.py, custom_config["dataset_dir"] = the prepared directory) -> Resolver (the
latest blessed model) -> stock Evaluator (a TFMA EvalConfig: AUC above a floor and no worse than the blessed model)
-> Pusher, under LocalDagRunner with an ml-metadata SQLite store. The pushed model is served by tfrec's
PredictionService and answers as the trained SavedModel does in process; TFMA's AUC of it agrees with the exact AUC
(scikit-learn on the same predictions); a worse model (a constant score) is NOT_BLESSED and nothing is pushed."""

from __future__ import annotations

import glob
import os

import pytest

pytest.importorskip("tfx", reason="TFX is not installed (the tfx extra: pip install --ignore-requires-python "
                                  "-c constraints-tfx.txt -e '.[tfx]'); in a TFX virtualenv: "
                                  "pytest tests/pipelines/tfx_native")

from tests.pipelines.tfx_native.tfx_helpers import (MODULE_FILE, TINY, assert_served_equals_in_process,  # noqa: E402
                                                    executions, float_feature, newest, split_records,
                                                    stock_pipeline, tfma_auc_bound)

from export.versions import list_versions  # noqa: E402
from tfrec.config import SimulationConfig  # noqa: E402
from tfrec.simulation import simulate  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
#: The Evaluator's floor: the trained model clears it on this data (its exact test AUC: 0.5597, seeded training),
#: the constant model (AUC 0.5) does not.
MIN_AUC = 0.52
NODES = ("ImportExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Trainer", "latest_blessed",
         "Evaluator", "Pusher")


def eval_config():
    """TFMA's EvalConfig for tfrec's point-wise export: the ``serving_default`` signature (serialized tf.Example in,
    ``ctr`` out) and the ``label`` feature; AUC above :data:`MIN_AUC` and not below the latest blessed model's."""
    import tensorflow_model_analysis as tfma

    auc = tfma.MetricConfig(class_name="AUC", threshold=tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": MIN_AUC}),
        change_threshold=tfma.GenericChangeThreshold(direction=tfma.MetricDirection.HIGHER_IS_BETTER,
                                                     absolute={"value": -1e-10})))
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(signature_name="serving_default", label_key="label", prediction_key="ctr",
                                    preprocessing_function_names=[])],
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=[tfma.MetricsSpec(metrics=[tfma.MetricConfig(class_name="ExampleCount"), auc])])


def _pipeline(root, prepared, serving, module_file=MODULE_FILE):
    """The pipeline as the README's TFX section shows it, with the stock Evaluator gating the Pusher."""
    return stock_pipeline("tfrec_user", root, prepared, serving, TINY, train_steps=20, module_file=module_file,
                          evaluator=eval_config())


def _blessed(uri):
    """Whether the stock Evaluator's blessing at ``uri`` is BLESSED (its marker file)."""
    names = set(os.listdir(uri))
    assert names & {"BLESSED", "NOT_BLESSED"}, names
    return "BLESSED" in names


def _overall_metrics(uri):
    """TFMA's metrics of the overall slice, name -> value, from the Evaluator's output at ``uri``."""
    import tensorflow_model_analysis as tfma

    ((slice_key, metrics),) = tfma.load_eval_result(uri).slicing_metrics
    assert slice_key == (), slice_key
    return {name: value["doubleValue"] for name, value in metrics[""][""].items() if "doubleValue" in value}


def test_stock_tfx_trainer_with_tfrecs_module_pushes_a_model_that_serves_and_tfma_blesses_it(tmp_path):
    import numpy as np
    import tensorflow as tf
    import tensorflow_model_analysis as tfma
    from sklearn.metrics import roc_auc_score
    from tensorflow_metadata.proto.v0 import anomalies_pb2
    from tfx import v1 as tfx

    from tfrec.cli import main

    raw = str(tmp_path / "raw" / "train.txt")
    simulate(SimulationConfig(rows=3000, positive_rate=0.256, seed=7, vocab_scale=0.005, output=raw))
    prepared = str(tmp_path / "data")
    assert main(["prepare", "--input", raw, "--out", prepared, "--beta-pos", "1.0", "--min-count", "2",
                 "--progress-every", "0"]) == 0
    root, serving = str(tmp_path / "tfx"), str(tmp_path / "serving")

    tfx.orchestration.LocalDagRunner().run(_pipeline(root, prepared, serving))

    states = executions(root)
    assert {n: s[-1] for n, s in states.items()} == {n: "COMPLETE" for n in NODES}, states
    # The stock ExampleValidator found nothing wrong in tfrec's records against the inferred schema.
    (anomalies,) = glob.glob(os.path.join(root, "ExampleValidator", "anomalies", "*", "Split-valid",
                                          "SchemaDiff.pb"))
    report = anomalies_pb2.Anomalies()
    with open(anomalies, "rb") as f:
        report.ParseFromString(f.read())
    assert not report.anomaly_info, report
    # The Trainer's module read TFX's Split-train/* patterns with the side files of the prepared directory.
    (model_uri,) = glob.glob(os.path.join(root, "Trainer", "model", "*"))
    view = glob.glob(os.path.join(root, "Trainer", "model_run", "*", "dataset"))[0]
    assert os.path.realpath(os.path.join(view, "schema.json")) == os.path.realpath(os.path.join(prepared,
                                                                                                 "schema.json"))
    (version,) = list_versions(serving)
    (examples_uri,) = glob.glob(os.path.join(root, "ImportExampleGen", "examples", "*"))
    records = split_records(examples_uri, "test", 16)
    model = os.path.join(model_uri, "Format-Serving")
    got = assert_served_equals_in_process(serving, version, model, {"examples": records}, "serving_default",
                                          ("ctr", "ctr_logit"))
    assert got["ctr"].shape == (16,)

    # The stock Evaluator scored the trained model through its serving signature (no blessed model yet: the floor
    # only) and blessed it; TFMA's AUC (10,000 thresholds) agrees with the exact AUC of the same predictions.
    assert _blessed(newest(root, "Evaluator", "blessing"))
    metrics = _overall_metrics(newest(root, "Evaluator", "evaluation"))
    test = split_records(examples_uri, "test", 10 ** 9)
    scores = tf.saved_model.load(model).signatures["serving_default"](examples=tf.constant(test))["ctr"].numpy()
    labels = np.array([float_feature(r, "label") for r in test])
    exact = roc_auc_score(labels, scores)
    # TFMA sums the ROC curve over 10,000 evenly spaced thresholds: a positive-negative pair whose scores fall
    # between the same two thresholds loses its order (counted as a half), so TFMA's AUC differs from the exact one
    # by at most half the share of such pairs (about 1e-4 to 2e-4 on this data, scores crowd near the base rate).
    bound = tfma_auc_bound(labels, scores)
    assert metrics["example_count"] == len(test)
    assert exact > MIN_AUC and abs(metrics["auc"] - exact) <= bound + 1e-6, (metrics["auc"], exact, bound)

    # A worse model (a constant score: AUC 0.5) in the same pipeline: the Resolver hands the Evaluator the blessed
    # model as the baseline; the Evaluator does not bless, and the Pusher pushes nothing.
    tfx.orchestration.LocalDagRunner().run(
        _pipeline(root, prepared, serving, module_file=os.path.join(HERE, "constant_module.py")))
    states = executions(root)
    assert [states[n][-1] for n in NODES] == ["CACHED"] * 4 + ["COMPLETE"] * 4, states
    assert not _blessed(newest(root, "Evaluator", "blessing"))
    validation = tfma.load_validation_result(newest(root, "Evaluator", "evaluation"))
    assert not validation.validation_ok
    failed = {(f.metric_key.name, f.metric_key.is_diff) for v in validation.metric_validations_per_slice
              for f in v.failures}
    assert failed == {("auc", False), ("auc", True)}, validation  # below the floor and below the blessed model
    assert list_versions(serving) == [version]
