"""A pipeline written as a TFX user writes it, with tfrec only as data and as the Trainer's module file: stock
ImportExampleGen over `tfrec prepare` output -> StatisticsGen -> SchemaGen -> ExampleValidator -> Trainer
(module_file = tfrec/trainer_module.py, custom_config["dataset_dir"] = the prepared directory) -> Pusher, under
LocalDagRunner with an ml-metadata SQLite store. The pushed model is served by tfrec's PredictionService and
answers as the trained SavedModel does in process."""

from __future__ import annotations

import glob
import os

import pytest

pytest.importorskip("tfx", reason="TFX is not installed (the tfx extra: pip install --ignore-requires-python "
                                  "-c constraints-tfx.txt -e '.[tfx]'); in a TFX virtualenv: pytest tests/tfx_native")

from tfx_helpers import ROOT, TINY, assert_served_equals_in_process, split_records  # noqa: E402

from export.versions import list_versions  # noqa: E402
from tfrec.config import SimulationConfig  # noqa: E402
from tfrec.simulation import simulate  # noqa: E402

MODULE_FILE = os.path.join(ROOT, "tfrec", "trainer_module.py")


def _user_pipeline(root, prepared, serving):
    """The pipeline, as the README's TFX section shows it."""
    from tfx import v1 as tfx

    gen = tfx.components.ImportExampleGen(
        input_base=prepared,
        input_config=tfx.proto.Input(splits=[tfx.proto.Input.Split(name=s, pattern=f"{s}-*.tfrecord.gz")
                                             for s in ("train", "valid", "test")]))
    stats = tfx.components.StatisticsGen(examples=gen.outputs["examples"])
    schema = tfx.components.SchemaGen(statistics=stats.outputs["statistics"])
    validator = tfx.components.ExampleValidator(statistics=stats.outputs["statistics"],
                                                schema=schema.outputs["schema"])
    trainer = tfx.components.Trainer(
        module_file=MODULE_FILE, examples=gen.outputs["examples"], schema=schema.outputs["schema"],
        train_args=tfx.proto.TrainArgs(splits=["train"], num_steps=20),
        eval_args=tfx.proto.EvalArgs(splits=["valid"], num_steps=2),
        custom_config={"dataset_dir": prepared, **TINY})
    trainer.add_upstream_node(validator)
    pusher = tfx.components.Pusher(
        model=trainer.outputs["model"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=serving)))
    return tfx.dsl.Pipeline(
        pipeline_name="tfrec_user", pipeline_root=root,
        components=[gen, stats, schema, validator, trainer, pusher], enable_cache=True,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            os.path.join(root, "metadata.sqlite")),
        beam_pipeline_args=["--direct_num_workers=1", "--direct_running_mode=in_memory"])


def _executions(root):
    """node id -> state names of its executions, from the ml-metadata store."""
    import ml_metadata as mlmd
    from ml_metadata.proto import metadata_store_pb2

    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = os.path.join(root, "metadata.sqlite")
    store = mlmd.MetadataStore(config)
    out = {}
    for node in store.get_contexts_by_type("node"):
        states = [metadata_store_pb2.Execution.State.Name(e.last_known_state)
                  for e in store.get_executions_by_context(node.id)]
        out[node.name.split(".", 1)[1]] = states
    return out


def test_stock_tfx_trainer_with_tfrecs_module_pushes_a_model_that_serves(tmp_path):
    from tfx import v1 as tfx

    from tfrec.cli import main

    raw = str(tmp_path / "raw" / "train.txt")
    simulate(SimulationConfig(rows=3000, positive_rate=0.256, seed=7, vocab_scale=0.005, output=raw))
    prepared = str(tmp_path / "data")
    assert main(["prepare", "--input", raw, "--out", prepared, "--beta-pos", "1.0", "--min-count", "2",
                 "--progress-every", "0"]) == 0
    root, serving = str(tmp_path / "tfx"), str(tmp_path / "serving")

    tfx.orchestration.LocalDagRunner().run(_user_pipeline(root, prepared, serving))

    states = _executions(root)
    assert {n: s[-1] for n, s in states.items()} == {
        n: "COMPLETE" for n in ("ImportExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Trainer",
                                "Pusher")}, states
    # The stock ExampleValidator found nothing wrong in tfrec's records against the inferred schema.
    from tensorflow_metadata.proto.v0 import anomalies_pb2

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
    got = assert_served_equals_in_process(serving, version, os.path.join(model_uri, "Format-Serving"),
                                          {"examples": records}, "serving_default", ("ctr", "ctr_logit"))
    assert got["ctr"].shape == (16,)
