"""serving.limits: a request's rows are checked before anything is expanded; over the limit the answer is
INVALID_ARGUMENT, the server's memory does not move and it keeps answering."""

import os

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import (classification_pb2, input_pb2, predict_pb2, prediction_service_pb2_grpc,
                                     regression_pb2)

from serving.errors import ServingError
from serving.handlers import claimed_shape
from serving.limits import count_field, example_list_rows
from serving.manager import ModelSource
from serving.server import ModelServer
from tests.support.serving_models import check_answers, example, predict_request, save_model, start_serve
from tfrec.cli import main

INVALID = grpc.StatusCode.INVALID_ARGUMENT


def _tensor(dtype, dims, **values):
    t = tensor_pb2.TensorProto(dtype=dtype, **values)
    for d in dims:
        t.tensor_shape.dim.add(size=d)
    return t


def _predict(signature="", **inputs):
    req = predict_pb2.PredictRequest()
    req.model_spec.name, req.model_spec.signature_name = "ctr", signature
    for k, v in inputs.items():
        req.inputs[k].CopyFrom(v)
    return "Predict", req


def _examples_request(cls, signature, n, context=False):
    req = cls()
    req.model_spec.name, req.model_spec.signature_name = "ctr", signature
    examples = [tf.train.Example()] * n
    if context:
        req.input.example_list_with_context.examples.extend(examples)
        req.input.example_list_with_context.context.CopyFrom(tf.train.Example.FromString(example(1.0)))
    else:
        req.input.example_list.examples.extend(examples)
    return req


def _lists(*candidates):
    """One serialized ExampleListWithContext per count, each with that many candidates."""
    item = tf.train.Example.FromString(example(1.0, "a"))
    return [input_pb2.ExampleListWithContext(examples=[item] * n).SerializeToString() for n in candidates]


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


# ------------------------------------------------------------------------------------------ counting on the wire

def test_count_field_counts_what_protobuf_parses_and_stops_early():
    lst = input_pb2.ExampleListWithContext(examples=[tf.train.Example.FromString(example(float(i), "a"))
                                                     for i in range(300)],
                                           context=tf.train.Example.FromString(example(None, "ctx")))
    raw = lst.SerializeToString()
    assert count_field(raw, 1, 10**9) == 300 and count_field(raw, 2, 10**9) == 1 and count_field(raw, 3, 9) == 0
    assert count_field(raw, 1, 10) == 11  # stops once past the bound
    assert count_field(b"\x0a\x00" * 5 + b"\x10\x96\x01" + b"\x1d\0\0\0\0" + b"\x19" + b"\0" * 8, 1, 99) == 5
    for bad in (raw[:-1], b"\x0a\x05ab", b"\x0b", b"\x80"):  # truncated, a group wire type, a cut varint
        with pytest.raises(ValueError):
            count_field(bad, 1, 10**9)


def test_example_list_rows_is_exact_past_the_byte_bound():
    small = _lists(3, 4)
    assert example_list_rows(small, 1000) <= 1000  # short values: within the bound without a walk
    assert example_list_rows(_lists(40, 30), 50) == 51  # walked, stops one past the limit
    assert example_list_rows(_lists(20, 25), 50) == 45
    with pytest.raises(Exception, match="not a serialized ExampleListWithContext"):
        example_list_rows([b"\x0a\xff" * 40], 10)


def test_a_tensor_may_claim_2_to_the_24_elements_and_not_one_more():
    spec = meta_graph_pb2.TensorInfo(dtype=types_pb2.DT_STRING)
    spec.tensor_shape.unknown_rank = True
    assert claimed_shape("e", _tensor(types_pb2.DT_STRING, [4096, 4096], string_val=[b"x"]), spec) == [4096, 4096]
    with pytest.raises(ServingError, match="claims 16,781,312 elements, more than the limit 16,777,216"):
        claimed_shape("e", _tensor(types_pb2.DT_STRING, [4096, 4097], string_val=[b"x"]), spec)


# ------------------------------------------------------------------------------------------ the limit, in process

@pytest.fixture(scope="module")
def small_limit(tmp_path_factory):
    base = str(tmp_path_factory.mktemp("ctr"))
    save_model(os.path.join(base, "1"), 2.0)
    with ModelServer([ModelSource("ctr", base)], port=0, poll_seconds=0, max_batch_rows=8) as server:
        channel = grpc.insecure_channel(server.address)
        yield prediction_service_pb2_grpc.PredictionServiceStub(channel)
        channel.close()


def test_rows_up_to_the_limit_answer_and_one_more_is_invalid_argument(small_limit):
    stub = small_limit
    rows = [example(float(i), "a") for i in range(9)]
    assert len(stub.Predict(predict_request(examples=rows[:8]), timeout=10).outputs["ctr"].tensor_content) == 32
    over = {
        "examples": predict_request(examples=rows),
        "one input of several": _predict("predict_raw", x=tf.make_tensor_proto(np.ones(9, np.float32)),
                                         c=tf.make_tensor_proto(["a"]))[1],
        "classify": _examples_request(classification_pb2.ClassificationRequest, "classification", 9),
        "regress with a context": _examples_request(regression_pb2.RegressionRequest, "regression", 9, True),
        "candidates of two lists": _predict("score_candidates", lists=tf.make_tensor_proto(_lists(4, 5)))[1],
    }
    for name, req in over.items():
        method = {classification_pb2.ClassificationRequest: "Classify",
                  regression_pb2.RegressionRequest: "Regress"}.get(type(req), "Predict")
        with pytest.raises(grpc.RpcError) as e:
            getattr(stub, method)(req, timeout=10)
        assert e.value.code() == INVALID, (name, e.value.details())
        assert "more than this server's limit of 8 per request (--max-batch-rows)" in e.value.details(), name
    assert len(stub.Classify(_examples_request(classification_pb2.ClassificationRequest, "classification", 8),
                             timeout=10).result.classifications) == 8
    got = stub.Predict(_predict("score_candidates", lists=tf.make_tensor_proto(_lists(4, 4)))[1], timeout=10)
    assert tf.make_ndarray(got.outputs["bytes"]).shape == (2,)
    check_answers(stub)


def test_cli_refuses_a_limit_below_one(tmp_path, capsys):
    save_model(str(tmp_path / "ctr" / "1"), 2.0, warmup=False)
    assert main(["serve", "--base-path", str(tmp_path / "ctr"), "--max-batch-rows", "0"]) == 2
    assert capsys.readouterr().err.strip() == "tfrec serve: error: --max-batch-rows must be >= 1. Received: 0"


# ------------------------------------------------------------------------------------------ `tfrec serve`: memory

def test_huge_claims_are_refused_before_expansion_and_the_memory_does_not_move(tmp_path):
    base = str(tmp_path / "ctr")
    save_model(os.path.join(base, "1"), 2.0)
    proc, line = start_serve(base, "--poll-seconds", "0")  # the default limit, 65,536 rows
    try:
        assert line.startswith("serving ctr"), line + proc.stderr.read()
        channel = grpc.insecure_channel(line.split(" on ")[1].strip())
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        tiny = _predict(examples=_tensor(types_pb2.DT_STRING, [300_000]))  # shape only, no values
        assert len(tiny[1].SerializeToString()) < 40
        bad = {
            "300,000 rows claimed, no values": tiny,
            "2,000,000 rows claimed, no values": _predict(examples=_tensor(types_pb2.DT_STRING, [2_000_000])),
            "2^40 rows, one value": _predict(examples=_tensor(types_pb2.DT_STRING, [1 << 40], string_val=[b""])),
            "tensor_content of 7 bytes for 70,000 floats": _predict(
                "predict_raw", x=_tensor(types_pb2.DT_FLOAT, [70_000], tensor_content=b"\0" * 7),
                c=_tensor(types_pb2.DT_STRING, [70_000])),
            "tensor_content of 7 bytes for 4 floats": _predict(
                "predict_raw", x=_tensor(types_pb2.DT_FLOAT, [4], tensor_content=b"\0" * 7),
                c=tf.make_tensor_proto(["a"] * 4)),
            "5 string values for shape [3]": _predict(examples=_tensor(types_pb2.DT_STRING, [3], string_val=[b""] * 5)),
            "100,000 example lists claimed": _predict("score_candidates",
                                                      lists=_tensor(types_pb2.DT_STRING, [100_000])),
            "70,000 candidates in one list": _predict(
                "score_candidates", lists=tf.make_tensor_proto([input_pb2.ExampleListWithContext(
                    examples=[tf.train.Example()] * 70_000).SerializeToString()])),
            "70,000 examples to Classify": ("Classify", _examples_request(
                classification_pb2.ClassificationRequest, "classification", 70_000)),
            "70,000 examples to Regress": ("Regress", _examples_request(
                regression_pb2.RegressionRequest, "regression", 70_000, context=True)),
        }
        check_answers(stub)
        before = _rss_mb(proc.pid)
        for _ in range(3):
            for name, (method, req) in bad.items():
                with pytest.raises(grpc.RpcError) as e:
                    getattr(stub, method)(req, timeout=30)
                assert e.value.code() == INVALID, (name, e.value.code(), e.value.details())
            check_answers(stub)
        grown = _rss_mb(proc.pid) - before
        print(f"server RSS {before:.0f} MB, grown by {grown:.1f} MB after {3 * len(bad)} refused requests")
        assert grown < 24, grown  # measured: 1 to 4 MB (allocator noise); the refused requests are never built
        channel.close()
    finally:
        proc.terminate()
        proc.wait(timeout=60)
