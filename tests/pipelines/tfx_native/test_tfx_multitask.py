"""The multi-task family in a pipeline written as a TFX user writes it, with tfrec only as data and as the Trainer's
module file: `tfrec simulate --kind funnel` -> `tfrec prepare --format aliccp` -> stock ImportExampleGen ->
StatisticsGen -> SchemaGen -> ExampleValidator -> Trainer (module_file = tfrec/trainer_module.py, MMoE with PWiseR)
-> Pusher, under LocalDagRunner with an ml-metadata SQLite store. The pushed model is served by tfrec's
PredictionService and answers every task as the trained SavedModel does in process."""

from __future__ import annotations

import glob
import os

import pytest

pytest.importorskip("tfx", reason="TFX is not installed (the tfx extra: pip install --ignore-requires-python "
                                  "-c constraints-tfx.txt -e '.[tfx]'); in a TFX virtualenv: "
                                  "pytest tests/pipelines/tfx_native")

from tests.support.multitask_files import prepare_aliccp_funnel  # noqa: E402
from tests.pipelines.tfx_native.tfx_helpers import (assert_served_equals_in_process, executions, newest,  # noqa: E402
                                                    split_records, stock_pipeline)

from export.versions import list_versions  # noqa: E402

#: tfrec's config sections for the module: a tiny MMoE (2 experts of 8 units) with PWiseR on both tasks, 1 epoch.
CUSTOM_CONFIG = {
    "model": {"name": "mmoe", "embedding_dim": 4, "tower_units": [8], "expert_units": [8], "num_experts": 2,
              "dropout": 0.0, "loss": {"pwiser_tasks": ["ctr", "cvr"]}},
    "data": {"batch_size": 64, "eval_batch_size": 512, "shuffle_buffer": 500},
    "train": {"epochs": 1, "learning_rate": 0.01, "replicas": 1, "log_every_seconds": 0},
}
NODES = ("ImportExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Trainer", "Pusher")


def test_stock_tfx_pipeline_trains_the_multitask_family_and_pushes_a_model_that_serves(tmp_path):
    import tensorflow as tf
    from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2
    from tfx import v1 as tfx
    from tfx.utils import io_utils

    prepared = prepare_aliccp_funnel(str(tmp_path), rows=2400, seed=3)
    root, serving = str(tmp_path / "tfx"), str(tmp_path / "serving")

    tfx.orchestration.LocalDagRunner().run(
        stock_pipeline("tfrec_multitask", root, prepared, serving, CUSTOM_CONFIG, train_steps=20))

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
