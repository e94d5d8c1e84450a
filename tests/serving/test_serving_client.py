"""serving.client: calls against the local server, retries of UNAVAILABLE, deadlines, bounded concurrency."""

import os
import socket
import threading
import time
from concurrent import futures

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from serving.client import PredictionClient, PredictionError, examples_from_tfrecord, examples_from_tsv
from serving.manager import ModelSource
from serving.server import ModelServer
from tests.support.serving_models import example, expected_logit, save_model
from tfrec.cli import main


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = str(tmp_path_factory.mktemp("ctr"))
    save_model(os.path.join(base, "1"), 2.0)
    with ModelServer([ModelSource("ctr", base)], port=0, poll_seconds=0) as s:
        yield s


def test_predict_classify_regress_status(server):
    rows = [(1.0, "a"), (-0.5, "b"), (0.0, None)]
    x, c = [r[0] for r in rows], [r[1] or "" for r in rows]
    logit = expected_logit(2.0, x, c)
    p = 1 / (1 + np.exp(-logit))
    with PredictionClient(server.address, timeout=5) as client:
        assert client.signature_for("ctr") == ("serving_default", "examples")
        assert client.signature_for("ctr", "classify") == ("classification", "inputs")
        assert client.signature_for("ctr", "regress") == ("regression", "inputs")
        out = client.predict_examples("ctr", [example(*r) for r in rows])
        np.testing.assert_allclose(out["ctr_logit"], logit, rtol=1e-6)
        out, spec = client.predict_with_spec("ctr", {"x": np.array(x, np.float32), "c": c}, "predict_raw")
        np.testing.assert_allclose(out["ctr"], p, rtol=1e-6)
        assert spec.version.value == 1
        scores, labels = client.classify("ctr", [example(*r) for r in rows])
        np.testing.assert_allclose(scores, np.stack([1 - p, p], 1), rtol=1e-5)
        assert labels == [["0", "1"]] * 3
        np.testing.assert_allclose(client.regress("ctr", [tf.train.Example.FromString(example(*r)) for r in rows]), p,
                                   rtol=1e-5)
        assert client.status("ctr") == [(1, "AVAILABLE", "")]
        batches = [[example(float(i), "a")] for i in range(6)]
        got = client.map_predict_examples("ctr", batches)
        np.testing.assert_allclose([g["ctr_logit"][0] for g in got], 2.0 * np.arange(6) + 1, rtol=1e-6)


def test_errors_say_what_was_wrong(server):
    with PredictionClient(server.address, timeout=5) as client:
        with pytest.raises(PredictionError) as e:
            client.predict("ctr", {"examples": [1.0, 2.0]})
        assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert str(e.value).startswith(f"Predict on model 'ctr' at {server.address} failed with INVALID_ARGUMENT: ")
        assert "DT_FLOAT" in str(e.value)
        with pytest.raises(PredictionError) as e:
            client.predict_examples("nope", [example(1.0)])
        assert e.value.code == grpc.StatusCode.NOT_FOUND and "model 'nope' not found" in str(e.value)
        with pytest.raises(PredictionError) as e:
            client.predict_examples("ctr", [example(1.0)], signature="missing")
        assert e.value.code == grpc.StatusCode.NOT_FOUND and "no signature 'missing'" in str(e.value)


class _Flaky(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Fails the first ``failures`` calls with UNAVAILABLE, sleeps ``delay`` s, tracks calls in flight."""

    def __init__(self, failures=0, delay=0.0):
        self.failures, self.delay, self.calls, self.in_flight, self.peak = failures, delay, 0, 0, 0
        self.lock = threading.Lock()

    def Predict(self, request, context):  # noqa: N802
        with self.lock:
            self.calls += 1
            n = self.calls
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        try:
            if n <= self.failures:
                context.abort(grpc.StatusCode.UNAVAILABLE, "warming up")
            time.sleep(self.delay)
            resp = predict_pb2.PredictResponse()
            resp.outputs["y"].CopyFrom(tf.make_tensor_proto([float(n)]))
            return resp
        finally:
            with self.lock:
                self.in_flight -= 1


@pytest.fixture
def fake():
    servicers = []

    def start(**kw):
        s = _Flaky(**kw)
        server = grpc.server(futures.ThreadPoolExecutor(16))
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(s, server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servicers.append(server)
        return s, f"127.0.0.1:{port}"

    yield start
    for server in servicers:
        server.stop(0)


def test_retries_unavailable_with_backoff(fake):
    servicer, target = fake(failures=2)
    with PredictionClient(target, retries=3, backoff=0.01) as client:
        assert client.predict("m", {"x": [1.0]})["y"].tolist() == [3.0]
    assert servicer.calls == 3
    servicer, target = fake(failures=5)
    with PredictionClient(target, retries=2, backoff=0.01) as client:
        with pytest.raises(PredictionError) as e:
            client.predict("m", {"x": [1.0]})
    assert e.value.code == grpc.StatusCode.UNAVAILABLE and "after 3 attempt(s)" in str(e.value)
    assert servicer.calls == 3


def test_waits_for_a_server_that_starts_late(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = str(tmp_path / "ctr")
    save_model(os.path.join(base, "1"), 2.0, warmup=False)
    server = ModelServer([ModelSource("ctr", base)], port=port, poll_seconds=0)
    threading.Timer(0.5, server.start).start()
    try:
        with PredictionClient(f"127.0.0.1:{port}", retries=8, backoff=0.1, max_backoff=0.5) as client:
            out = client.predict_examples("ctr", [example(1.0, "a")])
        np.testing.assert_allclose(out["ctr_logit"], [3.0])
    finally:
        time.sleep(0.1)
        server.stop(0)


def test_deadline_and_bounded_concurrency(fake):
    servicer, target = fake(delay=1.0)
    with PredictionClient(target, timeout=0.2, retries=0) as client:
        with pytest.raises(PredictionError) as e:
            client.predict("m", {"x": [1.0]})
    assert e.value.code == grpc.StatusCode.DEADLINE_EXCEEDED and "did not answer within 0.2 s" in str(e.value)
    servicer, target = fake(delay=0.1)
    with PredictionClient(target, max_concurrency=2) as client:
        with futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda _: client.predict("m", {"x": [1.0]}), range(8)))
    assert servicer.calls == 8 and servicer.peak == 2


def test_examples_from_files(tmp_path):
    tsv = tmp_path / "rows.tsv"
    tsv.write_text("x\tc\n1.5\ta\n\tb\n")
    parsed = [tf.train.Example.FromString(e) for e in examples_from_tsv(str(tsv))]
    assert parsed[0].features.feature["x"].float_list.value == [1.5]
    assert parsed[0].features.feature["c"].bytes_list.value == [b"a"]
    assert "x" not in parsed[1].features.feature
    tsv.write_text("x\tc\n1\n")
    with pytest.raises(ValueError, match="line 2: 1 cells, the header has 2"):
        examples_from_tsv(str(tsv))
    rec = str(tmp_path / "ex.tfrecord.gz")
    with tf.io.TFRecordWriter(rec, options="GZIP") as w:
        for i in range(3):
            w.write(example(float(i)))
    assert examples_from_tfrecord(rec, limit=2) == [example(0.0), example(1.0)]


def test_tfrec_predict_command(server, tmp_path, capsys):
    tsv = tmp_path / "rows.tsv"
    tsv.write_text("x\tc\n1\ta\n2\tb\n")
    assert main(["predict", "--server", server.address, "--model", "ctr", "--input", str(tsv)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "row\tctr\tctr_logit"
    assert [float(l.split("\t")[2]) for l in lines[1:]] == [3.0, 4.0]
    assert main(["predict", "--server", server.address, "--model", "nope", "--input", str(tsv)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "tfrec predict: error:" in err[0] and "NOT_FOUND" in err[0]
