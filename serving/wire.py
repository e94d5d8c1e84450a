"""PredictRequest bytes for the client, with a batch of serialized tf.Examples written straight to the wire.

Why not the protobuf classes alone: a 4096-row batch of Criteo examples is one DT_STRING TensorProto of 4096
``string_val`` values (2.9 MB). Filling ``string_val`` through the upb Python API and then serializing the request
walks and copies every value twice; here each value is copied once, into the one ``bytes`` object gRPC sends
(``bench/bench_serving.py`` times both in the same run). The bytes are the message the protobuf classes build, so
stock TF Serving reads them as any PredictRequest (``tests/serving/test_serving_wire.py`` checks that they parse to the
same message); the model spec, the output filter and every other input still go through the protobuf classes.

Protobuf concatenation is a merge (https://protobuf.dev/programming-guides/encoding/), so a request is its
protobuf-encoded header followed by one ``inputs`` map entry per input. Messages (field number, wire type)::

    PredictRequest  { ModelSpec model_spec = 1; map<string, TensorProto> inputs = 2; repeated string output_filter = 3 }
    inputs entry    { string key = 1; TensorProto value = 2; }
    TensorProto     { DataType dtype = 1 [varint]; TensorShapeProto tensor_shape = 2; repeated bytes string_val = 8; }
    TensorShapeProto { repeated Dim dim = 2; }     Dim { int64 size = 1 [varint]; }
"""

from __future__ import annotations

from typing import List, Mapping, Optional, Sequence, Union

import numpy as np
from google.protobuf.internal.encoder import _VarintBytes as varint  # protobuf's own base-128 varint
from tensorflow.core.framework import tensor_pb2, types_pb2

_NUMPY_DTYPES = {  # values as tensor_content: tf.make_tensor_proto's dtypes and uint16 (TensorFlow reads any)
    np.dtype(np.float32): types_pb2.DT_FLOAT, np.dtype(np.float64): types_pb2.DT_DOUBLE,
    np.dtype(np.float16): types_pb2.DT_HALF, np.dtype(np.int32): types_pb2.DT_INT32,
    np.dtype(np.int64): types_pb2.DT_INT64, np.dtype(np.int16): types_pb2.DT_INT16,
    np.dtype(np.int8): types_pb2.DT_INT8, np.dtype(np.uint8): types_pb2.DT_UINT8,
    np.dtype(np.uint16): types_pb2.DT_UINT16, np.dtype(np.uint32): types_pb2.DT_UINT32,
    np.dtype(np.uint64): types_pb2.DT_UINT64,
}

# The tag and length of one string_val value (field 8, length-delimited: 0x42), for the lengths of most examples.
_TABLE = 1 << 14
_STRING_VAL = [b"\x42" + varint(n) for n in range(_TABLE)]


def _field(tag: int, payload: bytes) -> bytes:
    return bytes((tag,)) + varint(len(payload)) + payload


def _string_tensor_chunks(values: Sequence[bytes]) -> List[bytes]:
    table = _STRING_VAL
    prefixes = [table[n] if n < _TABLE else b"\x42" + varint(n) for n in map(len, values)]
    chunks = [b""] * (2 * len(prefixes) + 1)
    chunks[1::2] = prefixes
    chunks[2::2] = values
    # dtype: DT_STRING, tensor_shape { dim { size: n } }
    chunks[0] = b"\x08" + varint(types_pb2.DT_STRING) + _field(0x12, _field(0x12, b"\x08" + varint(len(prefixes))))
    return chunks


def string_tensor(values: Sequence[bytes]) -> bytes:
    """The serialized DT_STRING TensorProto of shape ``[len(values)]`` holding ``values`` in ``string_val``."""
    return b"".join(_string_tensor_chunks(values))


def numeric_tensor(value) -> Optional[tensor_pb2.TensorProto]:
    """``tf.make_tensor_proto`` of a numeric array, its values in ``tensor_content`` at any size; None for
    other dtypes (strings, bool, complex), which ``tf.make_tensor_proto`` encodes."""
    arr = np.asarray(value)
    if not arr.dtype.isnative:  # tensor_content is in the host's byte order (tf.make_tensor_proto forgets this)
        arr = arr.astype(arr.dtype.newbyteorder("="))
    dtype = _NUMPY_DTYPES.get(arr.dtype)
    if dtype is None:
        return None
    proto = tensor_pb2.TensorProto(dtype=dtype, tensor_content=np.ascontiguousarray(arr).tobytes())
    for d in arr.shape:
        proto.tensor_shape.dim.add(size=d)
    return proto


_NUMPY_OF = {v: k for k, v in _NUMPY_DTYPES.items()}


def numpy_dtype(dtype: int) -> Optional[np.dtype]:
    """The NumPy dtype of a numeric TensorProto ``dtype`` whose ``tensor_content`` NumPy reads as is; else None."""
    return _NUMPY_OF.get(dtype)


def to_ndarray(tensor: tensor_pb2.TensorProto) -> np.ndarray:
    """``tf.make_ndarray(tensor)``; a numeric ``tensor_content`` is read with ``np.frombuffer`` (no TensorFlow call:
    ``tf.make_ndarray`` costs ~0.1 ms of Python per tensor, a large share of a small request's round trip)."""
    dtype = _NUMPY_OF.get(tensor.dtype)
    if dtype is not None and tensor.tensor_content and not tensor.tensor_shape.unknown_rank:
        shape = [d.size for d in tensor.tensor_shape.dim]
        if len(tensor.tensor_content) == dtype.itemsize * int(np.prod(shape, dtype=np.int64)):
            return np.frombuffer(tensor.tensor_content, dtype).reshape(shape).copy()
    import tensorflow as tf

    return tf.make_ndarray(tensor)


def predict_request(header, inputs: Mapping[str, Union[Sequence[bytes], tensor_pb2.TensorProto]]) -> bytes:
    """PredictRequest bytes: ``header`` (a PredictRequest without inputs), then one ``inputs`` entry per input.

    Args:
      header: ``PredictRequest`` with the model spec and output filter.
      inputs: ``{name: TensorProto}``, or ``{name: list of bytes}`` for a DT_STRING batch of shape ``[n]``.

    Returns:
      the serialized request; every value is copied once, into it.
    """
    chunks = [header.SerializeToString()]
    for key, value in inputs.items():
        tensor = ([value.SerializeToString()] if isinstance(value, tensor_pb2.TensorProto)
                  else _string_tensor_chunks(value))
        size = sum(map(len, tensor))
        name = _field(0x0A, key.encode("utf-8"))
        size_bytes = varint(size)
        chunks.append(b"\x12" + varint(len(name) + 1 + len(size_bytes) + size) + name + b"\x12" + size_bytes)
        chunks.extend(tensor)
    return b"".join(chunks)
