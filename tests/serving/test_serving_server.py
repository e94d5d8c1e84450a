"""serving.server: answers, TF Serving's status code for each bad request, a fuzz, version swaps, policies."""

import os
import random
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2, get_model_status_pb2,
                                     model_service_pb2_grpc, predict_pb2, prediction_service_pb2_grpc,
                                     regression_pb2)

from serving.config import write_model_config
from serving.manager import ModelSource, read_model_config, scan_versions
from serving.server import ModelServer
from tests.support.serving_models import (check_answers, example, expected_logit, predict_request, save_model,
                                        save_v1_model)

INVALID, NOT_FOUND = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND
FAILED_PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
LIMIT = 1 << 20


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = str(tmp_path_factory.mktemp("ctr"))
    save_model(os.path.join(base, "1"), 2.0)
    s = ModelServer([ModelSource("ctr", base)], port=0, poll_seconds=0.2, max_message_bytes=LIMIT).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def stub(server):
    channel = grpc.insecure_channel(server.address, options=[("grpc.max_send_message_length", 8 * LIMIT)])
    yield prediction_service_pb2_grpc.PredictionServiceStub(channel)
    channel.close()


def _examples(*rows):
    return [tf.train.Example.FromString(example(x, c)) for x, c in rows]


def test_binds_loopback_on_a_free_port(server):
    assert server.host == "127.0.0.1" and server.port > 0 and server.address == f"127.0.0.1:{server.port}"


def test_predict_serving_default_and_raw(stub):
    resp = stub.Predict(predict_request(), timeout=10)
    assert resp.model_spec.name == "ctr" and resp.model_spec.version.value == 1
    assert resp.model_spec.signature_name == "serving_default"
    logit = tf.make_ndarray(resp.outputs["ctr_logit"])
    np.testing.assert_allclose(logit, [3.0, 4.0])
    np.testing.assert_allclose(tf.make_ndarray(resp.outputs["ctr"]), 1 / (1 + np.exp(-logit)), rtol=1e-6)
    req = predict_pb2.PredictRequest(output_filter=["ctr_logit"])
    req.model_spec.name, req.model_spec.signature_name = "ctr", "predict_raw"
    req.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([0.5, -1.0], np.float32)))
    req.inputs["c"].CopyFrom(tf.make_tensor_proto(["a", "zz"]))
    resp = stub.Predict(req, timeout=10)
    assert list(resp.outputs) == ["ctr_logit"]
    np.testing.assert_allclose(tf.make_ndarray(resp.outputs["ctr_logit"]), expected_logit(2.0, [0.5, -1.0], ["a", "zz"]))


def test_classify_and_regress_with_context(stub):
    req = classification_pb2.ClassificationRequest()
    req.model_spec.name, req.model_spec.signature_name = "ctr", "classification"
    req.input.example_list.examples.extend(_examples((1.0, "a"), (-1.0, "b")))
    rows = stub.Classify(req, timeout=10).result.classifications
    p = 1 / (1 + np.exp(-expected_logit(2.0, [1.0, -1.0], ["a", "b"])))
    assert [[c.label for c in r.classes] for r in rows] == [["0", "1"], ["0", "1"]]
    np.testing.assert_allclose([[c.score for c in r.classes] for r in rows], np.stack([1 - p, p], 1), rtol=1e-5)
    req = regression_pb2.RegressionRequest()
    req.model_spec.name, req.model_spec.signature_name = "ctr", "regression"
    ctx = req.input.example_list_with_context
    ctx.context.CopyFrom(tf.train.Example.FromString(example(1.0, "a")))
    ctx.examples.extend([tf.train.Example.FromString(example(0.0)), tf.train.Example.FromString(example(None, "b"))])
    got = [r.value for r in stub.Regress(req, timeout=10).result.regressions]
    # The example's own features override the context's: (x=0, c=a) and (x=1, c=b).
    np.testing.assert_allclose(got, 1 / (1 + np.exp(-np.array([1.0, 2.0]))), rtol=1e-6)


def test_metadata_and_status(server, stub):
    req = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    req.model_spec.name = "ctr"
    resp = stub.GetModelMetadata(req, timeout=10)
    sigs = get_model_metadata_pb2.SignatureDefMap()
    assert resp.metadata["signature_def"].Unpack(sigs) and resp.model_spec.version.value == 1
    assert {"serving_default", "predict_raw", "classification", "regression"} <= set(sigs.signature_def)
    assert sigs.signature_def["classification"].method_name == "tensorflow/serving/classify"
    assert sigs.signature_def["serving_default"].inputs["examples"].dtype == types_pb2.DT_STRING
    status = model_service_pb2_grpc.ModelServiceStub(grpc.insecure_channel(server.address))
    sreq = get_model_status_pb2.GetModelStatusRequest()
    sreq.model_spec.name = "ctr"
    (v,) = status.GetModelStatus(sreq, timeout=10).model_version_status
    assert v.version == 1 and v.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
    sreq.model_spec.name = "nope"
    with pytest.raises(grpc.RpcError) as e:
        status.GetModelStatus(sreq, timeout=10)
    assert e.value.code() == NOT_FOUND
    # No model_spec at all: INVALID_ARGUMENT, as TF Serving's get_model_status_impl.cc ("Missing ModelSpec").
    with pytest.raises(grpc.RpcError) as e:
        status.GetModelStatus(get_model_status_pb2.GetModelStatusRequest(), timeout=10)
    assert e.value.code() == INVALID and "no model_spec" in e.value.details(), e.value.details()


def _tensor(dtype, dims, **values):
    t = tensor_pb2.TensorProto(dtype=dtype, **values)
    for d in dims:
        t.tensor_shape.dim.add(size=d)
    return t


def _predict(inputs, signature="", model="ctr", version=None, output_filter=()):
    req = predict_pb2.PredictRequest(output_filter=list(output_filter))
    req.model_spec.name, req.model_spec.signature_name = model, signature
    if version is not None:
        req.model_spec.version.value = version
    for k, v in inputs.items():
        req.inputs[k].CopyFrom(v)
    return "Predict", req


def _classify(signature="classification", examples=()):
    req = classification_pb2.ClassificationRequest()
    req.model_spec.name, req.model_spec.signature_name = "ctr", signature
    req.input.example_list.examples.extend(examples)
    return "Classify", req


def _regress(signature="regression", examples=()):
    req = regression_pb2.RegressionRequest()
    req.model_spec.name, req.model_spec.signature_name = "ctr", signature
    req.input.example_list.examples.extend(examples)
    return "Regress", req


def _label(label):
    method, req = _predict({"examples": tf.make_tensor_proto([example(1.0)])})
    req.model_spec.version_label = label
    return method, req


def _metadata(fields):
    req = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=fields)
    req.model_spec.name = "ctr"
    return "GetModelMetadata", req


GOOD = tf.make_tensor_proto([example(1.0, "a")])
BAD_REQUESTS = {
    "wrong dtype": (_predict({"examples": tf.make_tensor_proto([1.0, 2.0])}), INVALID, "DT_FLOAT"),
    "missing input": (_predict({"x": tf.make_tensor_proto([1.0])}, "predict_raw"), INVALID, "missing input(s) ['c']"),
    "extra input": (_predict({"examples": GOOD, "y": GOOD}), INVALID, "unknown input(s) ['y']"),
    "bad shape": (_predict({"examples": tf.make_tensor_proto([[example(1.0)]])}), INVALID, "expects [-1]"),
    "negative dimension": (_predict({"examples": _tensor(types_pb2.DT_STRING, [-3], string_val=[b""])}), INVALID,
                           "negative"),
    "values do not fit the shape": (_predict({"examples": _tensor(types_pb2.DT_STRING, [1], string_val=[b"", b""])}),
                                    INVALID, "2 values for shape [1]"),
    "short tensor_content": (_predict({"x": _tensor(types_pb2.DT_FLOAT, [4], tensor_content=b"\0" * 7),
                                       "c": tf.make_tensor_proto(["a"] * 4)}, "predict_raw"), INVALID, "7 bytes"),
    "huge splatted shape": (_predict({"examples": _tensor(types_pb2.DT_STRING, [1 << 40], string_val=[b""])}),
                            INVALID, "more than the limit"),
    "malformed serialized Example": (_predict({"examples": tf.make_tensor_proto([b"\x0a\xff\xff garbage"])}),
                                     INVALID, "parse"),
    "empty request": (_predict({}), INVALID, "no inputs"),
    "no model name": (_predict({"examples": GOOD}, model=""), INVALID, "no model name"),
    "unknown model": (_predict({"examples": GOOD}, model="nope"), NOT_FOUND, "model 'nope' not found"),
    "unknown version": (_predict({"examples": GOOD}, version=7), NOT_FOUND, "version 7"),
    # TF Serving's codes (server_core.cc, predict_util.cc, classifier.cc, regressor.cc).
    "unknown version label": (_label("canary"), INVALID, "label 'canary'"),
    "unknown signature": (_predict({"examples": GOOD}, "nope"), FAILED_PRECONDITION, "signature 'nope' not found"),
    "classify on an unknown signature": (_classify("nope", _examples((1.0, "a"))), INVALID,
                                         "signature 'nope' not found"),
    "regress on an unknown signature": (_regress("nope", _examples((1.0, "a"))), INVALID,
                                        "signature 'nope' not found"),
    "output_filter names an output twice": (_predict({"examples": GOOD}, output_filter=["ctr", "ctr_logit", "ctr"]),
                                            INVALID, "output_filter names output(s) ['ctr'] more than once"),
    "output_filter names an unknown output": (_predict({"examples": GOOD}, output_filter=["ctr", "p"]), INVALID,
                                              "unknown output(s) ['p']"),
    "a long model name is cut in the message": (_predict({"examples": GOOD}, model="m" * 100_000), NOT_FOUND,
                                                "... (100,000 characters)"),
    "a long input name is cut in the message": (_predict({"examples": GOOD, "i" * 100_000: GOOD}), INVALID,
                                                "... (100,000 characters)"),
    "a long signature name is cut in the message": (_predict({"examples": GOOD}, "s" * 100_000), FAILED_PRECONDITION,
                                                    "... (100,000 characters)"),
    "classify on a predict signature": (_classify("serving_default", _examples((1.0, "a"))), INVALID,
                                        "expected 'tensorflow/serving/classify'"),
    "classify without examples": (_classify(), INVALID, "no examples"),
    "metadata without a field": (_metadata([]), INVALID, "at least one metadata_field"),
    "metadata of an unknown field": (_metadata(["signature_def", "graph"]), INVALID, "['graph']"),
    "over the message size limit": (_predict({"examples": tf.make_tensor_proto([b"x" * (LIMIT + 10)])}),
                                    grpc.StatusCode.RESOURCE_EXHAUSTED, ""),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_bad_request_gets_its_status_code_and_the_server_keeps_serving(stub, case):
    (method, req), code, needle = BAD_REQUESTS[case]
    with pytest.raises(grpc.RpcError) as e:
        getattr(stub, method)(req, timeout=10)
    assert e.value.code() == code, e.value.details()
    assert needle in (e.value.details() or ""), e.value.details()
    assert len(e.value.details() or "") < 1000, len(e.value.details())  # client strings are cut to ~200 characters
    check_answers(stub)


def _random_request(rng: random.Random):
    dtypes = [types_pb2.DT_STRING, types_pb2.DT_FLOAT, types_pb2.DT_INT64, types_pb2.DT_DOUBLE, types_pb2.DT_BOOL,
              types_pb2.DT_RESOURCE, types_pb2.DT_VARIANT, 0, 999]
    kind = rng.random()
    if kind < 0.1:
        return "Classify", _classify(rng.choice(["classification", "regression", "", "x"]),
                                     _examples(*[(rng.uniform(-1e30, 1e30), "a")] * rng.randint(0, 3)))[1]
    keys = rng.sample(["examples", "x", "c", "inputs", "", "\xff"], rng.randint(0, 3))
    inputs = {}
    for k in keys:
        t = tensor_pb2.TensorProto(dtype=rng.choice(dtypes))
        for _ in range(rng.randint(0, 3)):
            t.tensor_shape.dim.add(size=rng.choice([-1, 0, 1, 2, 3, 1 << 33]))
        t.tensor_shape.unknown_rank = rng.random() < 0.05
        r = rng.random()
        if r < 0.3:
            t.tensor_content = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 24)))
        elif r < 0.7:
            t.string_val.extend(bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 30)))
                                for _ in range(rng.randint(0, 3)))
        else:
            t.float_val.extend(rng.uniform(-1e38, 1e38) for _ in range(rng.randint(0, 4)))
        inputs[k] = t
    sig = rng.choice(["", "serving_default", "predict_raw", "classification", "nope"])
    return _predict(inputs, sig, model=rng.choice(["ctr", "ctr", "ctr", "other"]))


def test_fuzz_of_malformed_requests_leaves_the_server_answering(server, stub):
    rng = random.Random(0)
    calls = [_random_request(rng) for _ in range(1200)]
    pending = [getattr(stub, method).future(req, timeout=30) for method, req in calls]
    # Bytes that are not a protobuf message at all, straight onto the wire.
    channel = grpc.insecure_channel(server.address)
    raw = channel.unary_unary("/tensorflow.serving.PredictionService/Predict")
    garbage = [raw.future(bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 64))), timeout=30)
               for _ in range(100)]

    def count(fs):
        codes = {}
        for f in fs:
            try:
                f.result()
                name = "OK"
            except grpc.RpcError as e:
                name = e.code().name
            codes[name] = codes.get(name, 0) + 1
        return codes

    codes, raw_codes = count(pending), count(garbage)
    print("fuzz status codes:", codes, "undecodable messages:", raw_codes)
    assert set(codes) <= {"OK", "INVALID_ARGUMENT", "NOT_FOUND", "FAILED_PRECONDITION"}, codes  # never INTERNAL
    assert codes.get("INVALID_ARGUMENT", 0) > 500, codes
    assert set(raw_codes) <= {"OK", "INVALID_ARGUMENT", "NOT_FOUND", "INTERNAL"}, raw_codes
    check_answers(stub)


def test_new_version_swaps_in_under_a_steady_stream_without_failures(tmp_path):
    base = str(tmp_path / "ctr")
    save_model(os.path.join(base, "1"), 2.0, warmup=False)
    with ModelServer([ModelSource("ctr", base)], port=0, poll_seconds=0.1) as server:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(server.address))
        seen, failures, stop = [], [], threading.Event()

        def stream():
            while not stop.is_set():
                try:
                    resp = stub.Predict(predict_request(), timeout=10)
                    seen.append((resp.model_spec.version.value, tf.make_ndarray(resp.outputs["ctr_logit"])))
                except grpc.RpcError as e:  # pragma: no cover - the assertion below reports it
                    failures.append(e)

        threads = [threading.Thread(target=stream) for _ in range(2)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        os.makedirs(os.path.join(base, "2.tmp-export"))  # temporary directories are ignored
        save_model(os.path.join(base, "2"), 3.0)          # lands atomically, with warmup records
        deadline = time.time() + 60
        while time.time() < deadline and sum(v == 2 for v, _ in seen[-20:]) < 20:
            time.sleep(0.1)
        stop.set()
        for t in threads:
            t.join()
    assert not failures, failures[:3]
    versions = [v for v, _ in seen]
    assert versions[0] == 1 and versions[-1] == 2, versions[-5:]
    first2 = versions.index(2)
    assert versions.count(1) >= 5 and all(v == 2 for v in versions[first2 + 10:])
    for v, logit in seen:
        np.testing.assert_allclose(logit, expected_logit({1: 2.0, 2: 3.0}[v], [1.0, 2.0], ["a", "b"]), rtol=1e-6)


def test_pinned_versions_labels_and_a_broken_version(tmp_path):
    base = str(tmp_path / "ctr")
    for v in (1, 2, 3):
        save_model(os.path.join(base, str(v)), float(v), warmup=False)
    os.makedirs(os.path.join(base, "4"))
    with open(os.path.join(base, "4", "saved_model.pb"), "wb") as f:
        f.write(b"not a SavedModel")
    os.makedirs(os.path.join(base, "tmp-5"))
    assert scan_versions(base) == [1, 2, 3, 4]
    cfg = write_model_config(str(tmp_path / "models.config"),
                             [ModelSource("pinned", base, policy="specific", versions=(1, 3), labels={"stable": 1}),
                              ModelSource("latest", base)])
    sources = read_model_config(cfg)
    assert [(s.name, s.policy, s.versions, s.labels) for s in sources] == [
        ("pinned", "specific", (1, 3), {"stable": 1}), ("latest", "latest", (), {})]
    with ModelServer(sources, port=0, poll_seconds=0) as server:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(server.address))

        def version(model, **spec):
            method, req = _predict({"examples": tf.make_tensor_proto([example(1.0)])}, model=model)
            if "version" in spec:
                req.model_spec.version.value = spec["version"]
            if "label" in spec:
                req.model_spec.version_label = spec["label"]
            resp = stub.Predict(req, timeout=10)
            return resp.model_spec.version.value, float(tf.make_ndarray(resp.outputs["ctr_logit"])[0])

        assert server.manager.available("pinned") == [1, 3]
        assert version("pinned") == (3, 3.0) and version("pinned", version=1) == (1, 1.0)
        assert version("pinned", label="stable") == (1, 1.0)
        with pytest.raises(grpc.RpcError) as e:
            version("pinned", version=2)
        assert e.value.code() == NOT_FOUND
        # Version 4 of "latest" does not load: it is reported, and version 3 keeps serving.
        assert version("latest") == (3, 3.0)
        states = {v: (s.state, s.error) for v, s in server.manager.status("latest")}
        assert states[3][0] == "AVAILABLE" and states[4][0] == "END" and states[4][1] is not None


def test_serves_a_tf1_savedmodel_built_with_the_signature_def_helpers(tmp_path):
    base = str(tmp_path / "v1")
    save_v1_model(os.path.join(base, "1"), 2.0)
    with ModelServer([ModelSource("ctr", base)], port=0, poll_seconds=0) as server:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(server.address))
        check_answers(stub)
        req = classification_pb2.ClassificationRequest()
        req.model_spec.name, req.model_spec.signature_name = "ctr", "classification"
        req.input.example_list.examples.extend(_examples((1.0, "a")))
        (row,) = stub.Classify(req, timeout=10).result.classifications
        p = 1 / (1 + np.exp(-3.0))
        np.testing.assert_allclose([c.score for c in row.classes], [1 - p, p], rtol=1e-5)
        assert [c.label for c in row.classes] == ["", ""]  # no classes output: scores only, as TF Serving
        req = regression_pb2.RegressionRequest()
        req.model_spec.name, req.model_spec.signature_name = "ctr", "regression"
        req.input.example_list.examples.extend(_examples((1.0, "a")))
        np.testing.assert_allclose([r.value for r in stub.Regress(req, timeout=10).result.regressions], [p],
                                   rtol=1e-5)


def test_a_port_in_use_is_a_clear_error(server):
    other = ModelServer([ModelSource("ctr", server.manager.sources["ctr"].base_path)], port=server.port,
                        poll_seconds=0)
    with pytest.raises(RuntimeError, match=f"cannot bind 127.0.0.1:{server.port}"):
        other.start()
