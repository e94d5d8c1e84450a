"""A real export served over gRPC: `tfrec export` writes a DCN V2 SavedModel, ModelServer serves it, and every
API (Predict on serving_default and predict_raw, Classify, Regress, GetModelMetadata) answers as the Keras model
does; a new export swaps in under a stream of requests; a malformed request is refused and the server keeps
serving; `tfrec serve` + `tfrec predict` work on the same export."""

import math
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf

import export
from serving.client import PredictionClient, PredictionError
from serving.manager import ModelSource
from serving.server import ModelServer
from tests.support.serving_models import start_serve
from tfrec.cli import main
from tfrec.config import load_config
from tfrec.features import CRITEO
from tfrec.train import best_weights_path, build_model

SMALL = ["model.dnn_hidden_units=[8]", "model.num_cross_layers=1", "model.embedding_dim=4"]
ROWS = [{"I1": 5, "I2": -1, "C1": "00000003", "C2": "deadbeef"},
        {"I2": 100, "I7": 3, "C3": "00000001", "C9": "ffffffff"},
        {},  # every feature missing
        {"I1": 0, "I13": 12345, **{c: f"{i:08x}" for i, c in enumerate(CRITEO.categorical)}}]


def _model(tiny_dataset, seed):
    model = build_model(load_config(None, [f"data.dir={tiny_dataset}", *SMALL]))
    model.build_from_config(None)
    # Off their tiny initial values, so the rows (and two versions) give different outputs.
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(scale=0.5, size=w.shape).astype(w.dtype) for w in model.get_weights()])
    return model


def _features(rows):
    """The model's raw inputs of the rows by the documented conventions (missing dense NaN, categorical ""),
    built without the export's parser."""
    out = {d: tf.constant([float(r[d]) if d in r else math.nan for r in rows], tf.float32) for d in CRITEO.dense}
    out.update({c: tf.constant([str(r.get(c, "")) for r in rows], tf.string) for c in CRITEO.categorical})
    return out


def _keras(model, rows):
    out = model(_features(rows), training=False)
    return out["probability"].numpy(), out["logit"].numpy()


@pytest.fixture(scope="module")
def served(tiny_dataset, tmp_path_factory):
    """Version 1 written by `tfrec export` from a run's model directory, served by an in-process ModelServer."""
    tmp = tmp_path_factory.mktemp("served")
    model = _model(tiny_dataset, 3)
    model_dir = str(tmp / "run")
    model.save_weights(best_weights_path(model_dir))
    base = str(tmp / "models" / "ctr")
    argv = ["export", "--data", tiny_dataset, "--model-dir", model_dir, "--base-path", base, "--model-name", "ctr",
            "--warmup-rows", "4", *[a for s in SMALL for a in ("--set", s)]]
    assert main(argv) == 0
    assert export.list_versions(base) == [1]
    server = ModelServer([ModelSource("ctr", base)], port=0, poll_seconds=0.2).start()
    client = PredictionClient(server.address, timeout=30)
    yield model, base, server, client
    client.close()
    server.stop()


def test_every_api_answers_as_the_keras_model(served):
    model, _, _, client = served
    serialized = export.serialize_rows(ROWS, CRITEO)
    p, logit = _keras(model, ROWS)
    assert len(set(np.round(p, 6))) == len(ROWS)  # the rows really differ
    out = client.predict_examples("ctr", serialized)
    np.testing.assert_allclose(out["ctr"], p, atol=1e-6)
    np.testing.assert_allclose(out["ctr_logit"], logit, atol=1e-5)
    raw = {k: v.numpy() for k, v in _features(ROWS).items()}
    out_raw = client.predict("ctr", raw, signature="predict_raw")
    np.testing.assert_allclose(out_raw["ctr"], p, atol=1e-6)
    scores, labels = client.classify("ctr", serialized)
    np.testing.assert_allclose(scores[:, 1], p, atol=1e-6)
    np.testing.assert_allclose(scores[:, 0], 1.0 - p, atol=1e-6)
    assert labels == [["0", "1"]] * len(ROWS)
    np.testing.assert_allclose(client.regress("ctr", serialized), p, atol=1e-6)


def test_metadata_lists_the_four_signatures_with_their_methods(served):
    _, _, _, client = served
    sigs = client.metadata("ctr", refresh=True)
    assert {k: v.method_name for k, v in sigs.items()} == {
        "serving_default": "tensorflow/serving/predict", "predict_raw": "tensorflow/serving/predict",
        "classification": "tensorflow/serving/classify", "regression": "tensorflow/serving/regress"}
    assert set(sigs["serving_default"].inputs) == {"examples"}
    assert set(sigs["serving_default"].outputs) == {"ctr", "ctr_logit"}
    assert set(sigs["predict_raw"].inputs) == set(CRITEO.dense) | set(CRITEO.categorical)


def test_malformed_example_is_invalid_argument_and_the_server_keeps_serving(served):
    model, _, _, client = served
    good = export.serialize_rows(ROWS[:1], CRITEO)
    for bad in ([b"\xff\xfe not a tf.Example"], good + [b"\x0a\x05trunc"]):
        with pytest.raises(PredictionError) as exc:
            client.predict_examples("ctr", bad)
        assert exc.value.code == grpc.StatusCode.INVALID_ARGUMENT, exc.value
    # a float feature sent as bytes: the parse spec refuses it
    wrong = tf.train.Example(features=tf.train.Features(feature={
        "I1": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"3"]))})).SerializeToString()
    with pytest.raises(PredictionError) as exc:
        client.predict_examples("ctr", [wrong])
    assert exc.value.code == grpc.StatusCode.INVALID_ARGUMENT
    np.testing.assert_allclose(client.predict_examples("ctr", good)["ctr"], _keras(model, ROWS[:1])[0], atol=1e-6)


def test_cli_serve_and_predict_on_the_export(served, tmp_path, capsys):
    """`tfrec serve` (its own process) on the `tfrec export` base path, `tfrec predict` from a TSV of raw rows."""
    model, base, _, _ = served
    proc, line = start_serve(base, "--poll-seconds", "0")
    try:
        assert line.startswith("serving ctr (versions [1]) on 127.0.0.1:"), line + proc.stderr.read()
        address = line.split(" on ")[1].strip()
        rows = ROWS[:2]
        names = ["I1", "I2", "I7", "C1", "C2", "C3", "C9"]
        tsv = tmp_path / "rows.tsv"
        tsv.write_text("\n".join(["\t".join(names)] + ["\t".join(str(r.get(n, "")) for n in names)
                                                        for r in rows]) + "\n")
        capsys.readouterr()
        assert main(["predict", "--server", address, "--model", "ctr", "--input", str(tsv)]) == 0
        lines = capsys.readouterr().out.strip().splitlines()
        assert lines[0].split("\t") == ["row", "ctr", "ctr_logit"]
        got = np.array([float(l.split("\t")[1]) for l in lines[1:]])
        np.testing.assert_allclose(got, _keras(model, rows)[0], atol=2e-6)
    finally:
        proc.terminate()
        proc.communicate(timeout=60)
    assert proc.returncode == 0


def test_new_export_swaps_in_under_a_stream_without_failures(served, tiny_dataset):
    # Last in this file: it moves the served model to version 2.
    _, base, server, client = served
    serialized = export.serialize_rows(ROWS, CRITEO)
    model2 = _model(tiny_dataset, 4)
    p2 = _keras(model2, ROWS)[0]
    answers, failures, stop = [], [], threading.Event()

    def stream():
        while not stop.is_set():
            try:
                sent = time.monotonic()
                out, spec = client.predict_with_spec("ctr", {"examples": serialized})
                answers.append((spec.version.value, out["ctr"], sent, time.monotonic()))
            except Exception as e:  # noqa: BLE001 - every failure is counted
                failures.append(repr(e))

    threads = [threading.Thread(target=stream) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        while len(answers) < 5 and not failures:
            time.sleep(0.05)
        result = export.export_model(model2, base, CRITEO, data_dir=tiny_dataset, model_name="ctr", warmup_rows=4)
        assert result.version == 2
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not failures and not any(a[0] == 2 for a in answers):
            time.sleep(0.05)
        n2 = sum(a[0] == 2 for a in answers)
        while time.monotonic() < deadline and not failures and sum(a[0] == 2 for a in answers) < n2 + 5:
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert failures == []
    versions = [a[0] for a in answers]
    assert versions[0] == 1 and 2 in versions, versions
    # No rollback: once an answer from version 2 has come back, no request sent later is answered by version 1.
    # (Answers from two threads interleave, so a version-1 request in flight at the swap may come back last.)
    first_v2 = min(recv for v, _, _, recv in answers if v == 2)
    late_v1 = [sent for v, _, sent, _ in answers if v == 1 and sent > first_v2]
    assert late_v1 == [], f"{len(late_v1)} requests sent after version 2 answered were served by version 1"
    assert server.manager.available("ctr") == [2]
    for v, p, _, _ in answers:
        if v == 2:
            np.testing.assert_allclose(p, p2, atol=1e-6)
