"""The multi-task family in a pipeline written as a TFX user writes it, with tfrec only as data, as the Trainer's
module file and as the drift check: `tfrec simulate --kind funnel` -> `tfrec prepare --format aliccp` -> stock
ImportExampleGen -> StatisticsGen -> SchemaGen -> ExampleValidator -> tfrec's ValidationGate (the labels' drift
against the last validated data, TFDV's Jensen-Shannon comparator) -> Trainer (module_file =
tfrec/trainer_module.py, MMoE with PWiseR) -> stock Evaluator (a TFMA EvalConfig with one AUC per task) -> Pusher,
under LocalDagRunner with an ml-metadata SQLite store.

The pushed model is served by tfrec's PredictionService and answers every task as the trained SavedModel does in
process; TFMA's AUC of each task agrees with tfrec's exact per-task AUC within what TFMA's bins allow; a rerun with
nothing changed is fully cached (nothing pushed); a worse model (a constant score) is NOT_BLESSED and nothing is
pushed; data whose click rate drifted stops at the ValidationGate with the
drift named, and nothing is trained or pushed."""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import re

import pytest

pytest.importorskip("tfx", reason="TFX is not installed (the tfx extra: pip install --ignore-requires-python "
                                  "-c constraints-tfx.txt -e '.[tfx]'); in a TFX virtualenv: "
                                  "pytest tests/pipelines/tfx_native")

from tests.support.multitask_files import prepare_aliccp_funnel  # noqa: E402
from tests.pipelines.tfx_native.tfx_helpers import (MODULE_FILE, assert_served_equals_in_process, executions,  # noqa: E402
                                                    float_feature, newest, split_records, stock_pipeline,
                                                    tfma_auc_bound)

from export.versions import list_versions  # noqa: E402
from pipelines.tfx.components import ComponentError  # noqa: E402
from pipelines.tfx.config import ValidatorConfig  # noqa: E402
from tfrec.families.multitask import MULTITASK  # noqa: E402

#: tfrec's config sections for the module: a tiny MMoE (2 experts of 8 units) with PWiseR on both tasks, 1 epoch.
CUSTOM_CONFIG = {
    "model": {"name": "mmoe", "embedding_dim": 4, "tower_units": [8], "expert_units": [8], "num_experts": 2,
              "dropout": 0.0, "loss": {"pwiser_tasks": ["ctr", "cvr"]}},
    "data": {"batch_size": 64, "eval_batch_size": 512, "shuffle_buffer": 500},
    "train": {"epochs": 1, "learning_rate": 0.01, "replicas": 1, "log_every_seconds": 0},
}
#: The ValidationGate's parameters: tfrec's validator defaults (a relative change of a label's rate beyond 30% is
#: drift) on both labels of the family.
GATE = {**dataclasses.asdict(ValidatorConfig()), "labels": list(MULTITASK.labels)}
#: The funnel's click rate, and the drifted data's (a 2.4x click rate: far beyond the 30% the gate allows).
CLICK_RATE, DRIFTED_CLICK_RATE = 0.25, 0.6
#: The model's outputs TFMA scores, and each one's label; ``cvr`` is scored on the clicked samples only, as tfrec's
#: exact metrics score it (:func:`tfrec.metrics.multitask.task_space`): the ``click`` feature is its example weight,
#: so the samples without a click weigh 0 in TFMA's confusion matrices.
TASK_LABELS = {"ctr": "click", "cvr": "conversion"}
#: The Evaluator's floors: the trained model clears them on this data (its exact test AUCs: ctr 0.5616 on 203 rows,
#: cvr 0.6167 on the 71 clicked ones), a model that ranks no better than chance does not.
MIN_AUC = {"ctr": 0.51, "cvr": 0.51}
HERE = os.path.dirname(os.path.abspath(__file__))
NODES = ("ImportExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "ValidationGate", "Trainer",
         "Evaluator", "Pusher")


def eval_config():
    """TFMA's EvalConfig for tfrec's multi-task export: one model spec on the ``serving_default`` signature
    (serialized tf.Example in, a dict of task probabilities out) with a label key and a prediction key per output
    (TFMA's multi-output model spec), ``click`` as ``cvr``'s example weight; AUC per output above its floor."""
    import tensorflow_model_analysis as tfma

    def metrics(task):
        floor = tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(lower_bound={"value": MIN_AUC[task]}))
        return tfma.MetricsSpec(output_names=[task], metrics=[
            tfma.MetricConfig(class_name="ExampleCount"), tfma.MetricConfig(class_name="WeightedExampleCount"),
            tfma.MetricConfig(class_name="AUC", threshold=floor)])

    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(signature_name="serving_default", preprocessing_function_names=[],
                                    label_keys=TASK_LABELS, prediction_keys={t: t for t in TASK_LABELS},
                                    example_weight_keys={"cvr": "click"})],
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=[metrics(task) for task in TASK_LABELS])


def _pipeline(root, prepared, serving, module_file=MODULE_FILE, custom_config=CUSTOM_CONFIG):
    # No Resolver (latest blessed model) before the Evaluator: after the first blessing it resolves to that model,
    # which changes the Evaluator's inputs, so an identical rerun evaluates again and the Pusher pushes the same
    # model as a second version (seen on the point-wise pipeline) instead of being cached.
    return stock_pipeline("tfrec_multitask", root, prepared, serving, custom_config, train_steps=20,
                          module_file=module_file, evaluator=eval_config(), gate=GATE, resolver=False)


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    """The first run of the pipeline over a funnel of click rate :data:`CLICK_RATE`."""
    from tfx import v1 as tfx

    work = tmp_path_factory.mktemp("tfx_multitask")
    prepared = prepare_aliccp_funnel(str(work), rows=2400, seed=3, click_rate=CLICK_RATE)
    root, serving = str(work / "tfx"), str(work / "serving")
    tfx.orchestration.LocalDagRunner().run(_pipeline(root, prepared, serving))
    return {"work": work, "prepared": prepared, "root": root, "serving": serving}


def test_stock_tfx_pipeline_trains_the_multitask_family_and_pushes_a_model_that_serves(first):
    import tensorflow as tf
    from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2
    from tfx.utils import io_utils

    root, serving = first["root"], first["serving"]
    states = executions(root)
    assert {n: s[-1] for n, s in states.items()} == {n: "COMPLETE" for n in NODES}, states
    # TFDV read both labels of tfrec's records, and the stock ExampleValidator found nothing wrong in them.
    schema = io_utils.SchemaReader().read(os.path.join(newest(root, "SchemaGen", "schema"), "schema.pbtxt"))
    kinds = {f.name: f.type for f in schema.feature}
    assert kinds["click"] == kinds["conversion"] == schema_pb2.FLOAT and "101" in kinds, kinds
    for split in ("train", "valid", "test"):
        report = anomalies_pb2.Anomalies()
        with open(os.path.join(newest(root, "ExampleValidator", "anomalies"), f"Split-{split}", "SchemaDiff.pb"),
                  "rb") as f:
            report.ParseFromString(f.read())
        assert not report.anomaly_info, (split, report)
    # The first run's data is its own reference: no anomaly, and it became the baseline of the next runs.
    gate = newest(root, "ValidationGate", "gate_anomalies")
    with open(os.path.join(gate, "anomalies.json")) as f:
        assert json.load(f) == []
    assert os.path.exists(os.path.join(root, "baseline", "schema.pbtxt"))

    # The module trained the multi-task family (its signature answers every task) and the Pusher pushed it.
    model = os.path.join(newest(root, "Trainer", "model"), "Format-Serving")
    (version,) = list_versions(serving)
    records = split_records(newest(root, "ImportExampleGen", "examples"), "test", 16)
    outputs = tuple(tf.saved_model.load(model).signatures["serving_default"].structured_outputs)
    assert {"ctr", "cvr"} <= set(outputs), outputs
    got = assert_served_equals_in_process(serving, version, model, {"examples": records}, "serving_default",
                                          outputs)
    assert got["ctr"].shape == got["cvr"].shape == (16,)
    assert glob.glob(os.path.join(serving, str(version), "assets.extra", "tf_serving_warmup_requests"))


def test_tfma_scores_each_task_as_tfrecs_exact_auc_and_blesses_the_model(first):
    """The stock Evaluator scored the multi-task export through its serving signature, one AUC per task, and
    blessed it; each AUC agrees with tfrec's exact one (:func:`tfrec.metrics.multitask.multitask_report`, each
    task in its own space) on the same predictions within the bound of TFMA's 10,000 bins."""
    import numpy as np
    import tensorflow as tf
    import tensorflow_model_analysis as tfma

    from tfrec.metrics.multitask import multitask_report, task_space

    root = first["root"]
    assert "BLESSED" in os.listdir(newest(root, "Evaluator", "blessing"))
    ((slice_key, metrics),) = tfma.load_eval_result(newest(root, "Evaluator", "evaluation")).slicing_metrics
    assert slice_key == () and set(metrics) == set(TASK_LABELS), metrics
    tfma_auc = {t: metrics[t][""]["auc"]["doubleValue"] for t in TASK_LABELS}

    test = split_records(newest(root, "ImportExampleGen", "examples"), "test", 10 ** 9)
    model = os.path.join(newest(root, "Trainer", "model"), "Format-Serving")
    out = tf.saved_model.load(model).signatures["serving_default"](examples=tf.constant(test))
    labels = np.array([[float_feature(r, "click"), float_feature(r, "conversion")] for r in test])
    scores = {t: out[t].numpy() for t in TASK_LABELS}
    exact = multitask_report(labels, scores)
    for task in TASK_LABELS:
        mask, y = task_space(task, labels)
        bound = tfma_auc_bound(y, scores[task][mask])
        print(f"{task}: rows {int(mask.sum())}, exact AUC {exact[f'{task}_auc']:.6f}, TFMA {tfma_auc[task]:.6f}, "
              f"bound {bound:.2e}")
        assert exact[f"{task}_auc"] > MIN_AUC[task], (task, exact)
        assert abs(tfma_auc[task] - exact[f"{task}_auc"]) <= bound + 1e-6, (task, tfma_auc, exact, bound)
        # TFMA scored exactly the task's space: every test record for ctr, the clicked ones for cvr (the records of
        # weight 0 are left out of its counts too).
        counts = {k: metrics[task][""][k]["doubleValue"] for k in ("example_count", "weighted_example_count")}
        assert counts == {"example_count": int(mask.sum()), "weighted_example_count": int(mask.sum())}, (task, counts)
    assert task_space("ctr", labels)[0].sum() == len(test) > task_space("cvr", labels)[0].sum() > 0


def test_a_rerun_with_nothing_changed_is_fully_cached(first):
    from tfx import v1 as tfx

    root, serving = first["root"], first["serving"]
    before = list_versions(serving)
    tfx.orchestration.LocalDagRunner().run(_pipeline(root, first["prepared"], serving))
    states = executions(root)
    assert {n: s for n, s in states.items()} == {n: ["COMPLETE", "CACHED"] for n in NODES}, states
    assert list_versions(serving) == before


def test_a_worse_model_is_not_blessed_and_nothing_is_pushed(first):
    """A model that scores every task 0.5 (AUC 0.5, below both floors) in the same pipeline over the same data: the
    checks are cached, the Evaluator does not bless it, and the Pusher pushes nothing."""
    import tensorflow_model_analysis as tfma
    from tfx import v1 as tfx

    root, serving = first["root"], first["serving"]
    before = list_versions(serving)
    tfx.orchestration.LocalDagRunner().run(_pipeline(
        root, first["prepared"], serving, module_file=os.path.join(HERE, "constant_module.py"),
        custom_config={**CUSTOM_CONFIG, "constant_tasks": list(TASK_LABELS)}))
    states = executions(root)
    assert [states[n][-1] for n in NODES] == ["CACHED"] * 5 + ["COMPLETE"] * 3, states
    assert "NOT_BLESSED" in os.listdir(newest(root, "Evaluator", "blessing"))
    validation = tfma.load_validation_result(newest(root, "Evaluator", "evaluation"))
    failed = {(f.metric_key.name, f.metric_key.output_name) for v in validation.metric_validations_per_slice
              for f in v.failures}
    assert not validation.validation_ok and failed == {("auc", t) for t in TASK_LABELS}, validation
    assert list_versions(serving) == before


def test_drifted_click_rate_stops_at_the_validation_gate_and_nothing_is_trained_or_pushed(first):
    from tfx import v1 as tfx

    root, serving = first["root"], first["serving"]
    drifted = prepare_aliccp_funnel(str(first["work"] / "drifted"), rows=2400, seed=4,
                                    click_rate=DRIFTED_CLICK_RATE)
    before, runs = list_versions(serving), {n: len(s) for n, s in executions(root).items()}
    with pytest.raises(ComponentError) as failed:
        tfx.orchestration.LocalDagRunner().run(_pipeline(root, drifted, serving))
    # The gate names the drift with its numbers: the divergence of the click label over its threshold, the rates.
    found = re.search(r"\[drift\] drift of click: Jensen-Shannon divergence (\S+) > (\S+); train rate (\S+) "
                      r"against (\S+) of the last validated data", str(failed.value))
    assert found, str(failed.value)
    jsd, threshold, rate, reference = map(float, found.groups())
    assert jsd > threshold > 0 and rate / reference - 1 > GATE["positive_rate_drift"], found.groups()
    # ml-metadata: the checks ran on the new data, the gate FAILED, nothing after it ran, nothing was pushed.
    states = executions(root)
    assert {n: s[-1] for n, s in states.items() if len(s) > runs[n]} == {
        "ImportExampleGen": "COMPLETE", "StatisticsGen": "COMPLETE", "SchemaGen": "COMPLETE",
        "ExampleValidator": "COMPLETE", "ValidationGate": "FAILED"}, states
    assert list_versions(serving) == before
    # The drifted data did not become the reference: the baseline's click rate is still the first run's.
    from pipelines.tfx_native.validation import Baseline, label_mean

    assert abs(label_mean(Baseline(os.path.join(root, "baseline")).statistics("train"), "click") - reference) < 1e-4
