"""serving.wire and the client's request tensors: the bytes parse to the PredictRequest the protobuf classes build,
and a 4096-row batch and numeric inputs get the same answers through the server."""

import os

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import predict_pb2

from serving import wire
from serving.client import PredictionClient, PredictionError, request_tensor
from serving.handlers import tensor_to_array
from serving.manager import ModelSource
from serving.server import ModelServer
from tests.support.serving_models import example, expected_logit, save_model


def _header(**kw):
    req = predict_pb2.PredictRequest(output_filter=kw.get("output_filter", []))
    req.model_spec.name = "ctr"
    if "version" in kw:
        req.model_spec.version.value = kw["version"]
    if "signature" in kw:
        req.model_spec.signature_name = kw["signature"]
    return req


def _reference(header, inputs):
    ref = predict_pb2.PredictRequest()
    ref.CopyFrom(header)
    for k, v in inputs.items():
        ref.inputs[k].CopyFrom(v if isinstance(v, tensor_pb2.TensorProto) else tf.make_tensor_proto(v))
    return ref


def test_string_batch_parses_to_make_tensor_proto_at_every_varint_length():
    # Lengths on both sides of each varint width and of the prefix table, an empty value, a 1 MB value.
    values = [b"", b"\x00", b"a" * 127, b"b" * 128, b"c" * 16383, b"d" * 16384, b"e" * 2097151, b"f" * 2097152,
              bytes(range(256)) * 3]
    header = _header(version=7, signature="serving_default", output_filter=["ctr", "ctr_logit"])
    got = predict_pb2.PredictRequest.FromString(wire.predict_request(header, {"examples": values}))
    assert got == _reference(header, {"examples": values})
    assert list(got.inputs["examples"].string_val) == values
    assert tf.make_ndarray(got.inputs["examples"]).shape == (len(values),)
    assert predict_pb2.PredictRequest.FromString(wire.string_tensor(values)).ListFields()  # a message alone too
    assert tensor_pb2.TensorProto.FromString(wire.string_tensor(values)) == tf.make_tensor_proto(values)


def test_big_batch_of_examples_round_trips():
    rng = np.random.default_rng(0)
    values = [rng.bytes(int(n)) for n in rng.integers(0, 3000, 4096)]
    header = _header()
    raw = wire.predict_request(header, {"examples": values})
    got = predict_pb2.PredictRequest.FromString(raw)
    assert got == _reference(header, {"examples": values})
    assert len(raw) == got.ByteSize()


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.int32, np.int64, np.int16, np.int8,
                                   np.uint8, np.uint16, np.uint32, np.uint64])
@pytest.mark.parametrize("shape", [(), (1,), (5,), (2, 3), (0, 4)])
def test_numeric_inputs_travel_as_tensor_content_and_decode_to_the_same_array(dtype, shape):
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else np.finfo(dtype)
    extremes = [info.min, info.max, 0, 1] + ([np.inf, -np.inf, info.tiny] if dtype in (np.float16, np.float32,
                                                                                     np.float64) else [])
    arr = np.resize(np.array(extremes, dtype), int(np.prod(shape))).reshape(shape)
    proto = request_tensor(arr)
    assert proto.tensor_content == arr.tobytes() and not proto.float_val and not proto.int_val
    assert proto.dtype == tf.dtypes.as_dtype(dtype).as_datatype_enum
    header = _header(signature="predict_raw")
    got = predict_pb2.PredictRequest.FromString(wire.predict_request(header, {"x": proto}))
    spec = meta_graph_pb2.TensorInfo(dtype=proto.dtype)
    spec.tensor_shape.unknown_rank = True
    for decoded in (tf.make_ndarray(got.inputs["x"]), tensor_to_array("x", got.inputs["x"], spec),
                    wire.to_ndarray(got.inputs["x"])):
        assert decoded.dtype == arr.dtype and decoded.shape == arr.shape
        np.testing.assert_array_equal(decoded, arr)
    # The same array as tf.make_tensor_proto writes it (float_val for one element, tensor_content above).
    np.testing.assert_array_equal(tf.make_ndarray(got.inputs["x"]), tf.make_ndarray(tf.make_tensor_proto(arr)))


def test_non_contiguous_and_other_inputs():
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)[:, ::2]
    np.testing.assert_array_equal(tf.make_ndarray(request_tensor(arr)), arr)
    big_endian = np.arange(3, dtype=">i4")
    np.testing.assert_array_equal(tf.make_ndarray(request_tensor(big_endian)), big_endian)
    assert request_tensor(np.array([True, False])).dtype == types_pb2.DT_BOOL  # tf.make_tensor_proto's encoding
    assert list(request_tensor(["a", "zz"]).string_val) == [b"a", b"zz"]  # str values: tf.make_tensor_proto
    assert request_tensor([0.5, 1.0]).dtype == types_pb2.DT_FLOAT
    proto = tf.make_tensor_proto([1, 2])
    assert request_tensor(proto) is proto
    values = [b"x", b"yy"]
    assert request_tensor(values) is values  # serialized examples: written by serving.wire


def test_to_ndarray_equals_make_ndarray_on_every_encoding():
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    fast = wire.to_ndarray(wire.numeric_tensor(arr))
    np.testing.assert_array_equal(fast, arr)
    fast[0, 0] = 7.0  # a copy, writable, as tf.make_ndarray returns
    assert arr[0, 0] == 0.0
    for proto in (tf.make_tensor_proto(np.float32(1.5)),  # float_val
                  tf.make_tensor_proto([[True, False]]),  # bool
                  tf.make_tensor_proto([b"a", b"bc"]),  # string_val
                  tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[2.0],  # splat of float_val
                                         tensor_shape={"dim": [{"size": 3}]})):
        ref = tf.make_ndarray(proto)
        got = wire.to_ndarray(proto)
        assert got.dtype == ref.dtype and got.shape == ref.shape
        np.testing.assert_array_equal(got, ref)
    short = wire.numeric_tensor(arr)
    short.tensor_content = short.tensor_content[:-4]  # truncated: not read by np.frombuffer; TensorFlow's error
    with pytest.raises(ValueError):
        wire.to_ndarray(short)


def test_string_tensor_read_by_the_server_matches_make_ndarray():
    spec = meta_graph_pb2.TensorInfo(dtype=types_pb2.DT_STRING)
    spec.tensor_shape.dim.add(size=-1)
    values = [b"a", b"", b"\xff" * 300]
    t = tensor_pb2.TensorProto.FromString(wire.string_tensor(values))
    got = tensor_to_array("examples", t, spec)
    ref = tf.make_ndarray(t)
    assert got.dtype == ref.dtype == object and got.shape == ref.shape == (3,) and list(got) == values
    square = tf.make_tensor_proto([[b"a", b"b"], [b"c", b"d"]])
    spec.tensor_shape.unknown_rank = True
    np.testing.assert_array_equal(tensor_to_array("e", square, spec), tf.make_ndarray(square))
    splat = tf.make_tensor_proto([b"a"])  # fewer values than elements: the last repeats (TensorFlow's rule)
    splat.tensor_shape.dim[0].size = 3
    assert list(tensor_to_array("e", splat, spec)) == [b"a", b"a", b"a"]


def test_big_batch_and_raw_inputs_through_the_server(tmp_path):
    base = str(tmp_path / "ctr")
    save_model(os.path.join(base, "1"), 2.0, warmup=False)
    rng = np.random.default_rng(1)
    x = rng.normal(size=4096).astype(np.float32)
    c = rng.choice(["a", "b", "ccc"], 4096)
    with ModelServer([ModelSource("ctr", base)], port=0, poll_seconds=0) as server, \
            PredictionClient(server.address, timeout=30) as client:
        out = client.predict_examples("ctr", [example(float(a), str(b)) for a, b in zip(x, c)])
        np.testing.assert_allclose(out["ctr_logit"], expected_logit(2.0, x, c), rtol=1e-6)
        assert out["ctr_logit"].dtype == np.float32 and out["ctr_logit"].shape == (4096,)
        out = client.predict("ctr", {"x": x[:3], "c": [s.encode() for s in c[:3]]}, "predict_raw")
        np.testing.assert_allclose(out["ctr_logit"], expected_logit(2.0, x[:3], c[:3]), rtol=1e-6)
        with pytest.raises(PredictionError) as e:  # a numeric tensor_content of the wrong dtype is still refused
            client.predict("ctr", {"x": x[:3].astype(np.float64), "c": [b"a"] * 3}, "predict_raw")
        assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT and "DT_DOUBLE" in str(e.value)
        raw = grpc.insecure_channel(server.address).unary_unary("/tensorflow.serving.PredictionService/Predict")
        with pytest.raises(grpc.RpcError) as e:  # bytes that are not a PredictRequest
            raw(b"\xff\xff\xff", timeout=10)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
