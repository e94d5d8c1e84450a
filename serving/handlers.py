"""Request handling of the PredictionService: validate a request against its SignatureDef, run, answer.

Each handler takes the request proto and a ``resolve(model_spec) -> LoadedModel`` callable, and returns the
response proto or raises :class:`serving.errors.ServingError` with TF Serving's status code:

* INVALID_ARGUMENT: an empty request, a missing or extra input, a wrong dtype, a shape whose rank or fixed
  dimensions do not match the signature, a tensor whose values do not fit its shape, more rows than the server's
  limit (``serving.limits``), a malformed serialized ``tf.Example``, an unknown or repeated ``output_filter``
  name, an unknown signature or one of another method for Classify / Regress, an unknown version label.
* FAILED_PRECONDITION: an unknown signature for Predict.
* NOT_FOUND: an unknown model or version (raised by the resolver).

Every limit is checked on what the request claims (shapes, counts) before a tensor is expanded.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional

import numpy as np
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2, model_pb2, predict_pb2,
                                     regression_pb2)

from serving import wire
from serving.errors import invalid, quote, quote_all
from serving.limits import (DEFAULT_MAX_BATCH_ROWS, DEFAULT_MAX_ELEMENTS, EXAMPLE_LIST_INPUTS, check_rows,
                            example_list_rows)
from serving.loader import CLASSIFY_METHOD, DEFAULT_SIGNATURE, REGRESS_METHOD, LoadedModel, Signature

Resolver = Callable[[model_pb2.ModelSpec], LoadedModel]

# The TensorProto field that carries the values of each dtype (TF's tensor.proto).
_VALUE_FIELD = {
    types_pb2.DT_FLOAT: "float_val", types_pb2.DT_DOUBLE: "double_val", types_pb2.DT_INT32: "int_val",
    types_pb2.DT_INT16: "int_val", types_pb2.DT_INT8: "int_val", types_pb2.DT_UINT8: "int_val",
    types_pb2.DT_UINT16: "int_val", types_pb2.DT_INT64: "int64_val", types_pb2.DT_UINT32: "uint32_val",
    types_pb2.DT_UINT64: "uint64_val", types_pb2.DT_BOOL: "bool_val", types_pb2.DT_STRING: "string_val",
    types_pb2.DT_HALF: "half_val", types_pb2.DT_BFLOAT16: "half_val",
}
_ITEMSIZE = {types_pb2.DT_FLOAT: 4, types_pb2.DT_DOUBLE: 8, types_pb2.DT_INT32: 4, types_pb2.DT_INT16: 2,
             types_pb2.DT_INT8: 1, types_pb2.DT_UINT8: 1, types_pb2.DT_UINT16: 2, types_pb2.DT_INT64: 8,
             types_pb2.DT_UINT32: 4, types_pb2.DT_UINT64: 8, types_pb2.DT_BOOL: 1, types_pb2.DT_HALF: 2,
             types_pb2.DT_BFLOAT16: 2}
# Dtypes whose value fields hold the values themselves (half_val holds bit patterns: tf.make_ndarray reads it).
_PLAIN_VALUES = {types_pb2.DT_FLOAT: np.float32, types_pb2.DT_DOUBLE: np.float64, types_pb2.DT_INT32: np.int32,
                 types_pb2.DT_INT64: np.int64, types_pb2.DT_BOOL: np.bool_}


def dtype_name(dtype: int) -> str:
    """``DT_FLOAT`` for 1, ..., the name TF Serving's messages use."""
    try:
        return types_pb2.DataType.Name(dtype)
    except ValueError:
        return f"unknown dtype {dtype}"


def _shape_text(dims) -> str:
    return "[" + ", ".join(str(d) for d in dims) + "]"


def claimed_shape(name: str, tensor, spec, max_elements: int = DEFAULT_MAX_ELEMENTS) -> List[int]:
    """The shape a request TensorProto claims, checked against its signature TensorInfo (nothing is expanded).

    Raises:
      ServingError: INVALID_ARGUMENT for a wrong dtype, an unknown rank, a negative dimension, a shape the
        signature does not accept, or more than ``max_elements`` elements.
    """
    if tensor.dtype != spec.dtype:
        raise invalid(f"input {quote(name)} has dtype {dtype_name(tensor.dtype)}, the signature expects "
                      f"{dtype_name(spec.dtype)}")
    if tensor.tensor_shape.unknown_rank:
        raise invalid(f"input {quote(name)} has an unknown rank; a request tensor needs a full shape")
    dims = [d.size for d in tensor.tensor_shape.dim]
    if any(d < 0 for d in dims):
        raise invalid(f"input {quote(name)} has shape {_shape_text(dims[:8])} with a negative dimension")
    if not spec.tensor_shape.unknown_rank:
        want = [d.size for d in spec.tensor_shape.dim]
        if len(want) != len(dims) or any(w >= 0 and w != d for w, d in zip(want, dims)):
            raise invalid(f"input {quote(name)} has shape {_shape_text(dims[:8])}, the signature expects "
                          f"{_shape_text(want)} (-1 = any size)")
    n = int(np.prod(dims, dtype=np.float64)) if dims else 1
    if n > max_elements:
        raise invalid(f"input {quote(name)} claims {n:,} elements, more than the limit {max_elements:,}")
    return dims


def _values(name: str, tensor, dims: List[int]) -> np.ndarray:
    """The ndarray of a TensorProto whose shape :func:`claimed_shape` checked: ``tf.make_ndarray``'s result."""
    import tensorflow as tf

    n = int(np.prod(dims, dtype=np.int64)) if dims else 1
    field = _VALUE_FIELD.get(tensor.dtype)
    if field is None:
        raise invalid(f"input {quote(name)} has dtype {dtype_name(tensor.dtype)}, which the server cannot decode")
    content = tensor.tensor_content
    if content:
        if tensor.dtype == types_pb2.DT_STRING:
            raise invalid(f"input {quote(name)}: DT_STRING tensors carry their values in string_val, not "
                          f"tensor_content")
        if len(content) != n * _ITEMSIZE[tensor.dtype]:
            raise invalid(f"input {quote(name)}: tensor_content has {len(content)} bytes, shape "
                          f"{_shape_text(dims)} of {dtype_name(tensor.dtype)} needs {n * _ITEMSIZE[tensor.dtype]}")
        dtype = wire.numpy_dtype(tensor.dtype)
        if dtype is not None:
            return np.frombuffer(content, dtype).reshape(dims)
    else:
        values = getattr(tensor, field)
        count = len(values)
        if count > n:
            raise invalid(f"input {quote(name)} has {count} values for shape {_shape_text(dims)} ({n} elements)")
        if count == n and tensor.dtype == types_pb2.DT_STRING:
            # A batch of serialized examples: tf.make_ndarray's result without its intermediate list.
            return np.array(values, dtype=object).reshape(dims)
        if count == n and tensor.dtype in _PLAIN_VALUES:
            return np.array(values, dtype=_PLAIN_VALUES[tensor.dtype]).reshape(dims)
    try:  # fewer values than elements (the last one repeats), half floats, ...
        return tf.make_ndarray(tensor)
    except Exception as e:  # noqa: BLE001 - a proto that NumPy cannot read is the request's fault
        raise invalid(f"input {quote(name)} cannot be decoded: {e}") from e


def tensor_to_array(name: str, tensor, spec, max_elements: int = DEFAULT_MAX_ELEMENTS) -> np.ndarray:
    """Checks one request TensorProto against its signature TensorInfo and converts it to an ndarray.

    Args:
      name: the input's name (for messages).
      tensor: ``tensorflow.TensorProto`` from the request.
      spec: ``tensorflow.TensorInfo`` of the signature input.
      max_elements: the largest element count a tensor may claim.

    Returns:
      the array, of the spec's dtype and the tensor's shape.

    Raises:
      ServingError: INVALID_ARGUMENT for a wrong dtype, a bad or incompatible shape, or values that do not fit.
    """
    return _values(name, tensor, claimed_shape(name, tensor, spec, max_elements))


def check_inputs(sig: Signature, tensors, max_elements: int = DEFAULT_MAX_ELEMENTS,
                 max_rows: int = DEFAULT_MAX_BATCH_ROWS) -> Dict[str, np.ndarray]:
    """Validates the request's ``inputs`` map against the signature and converts it.

    Every shape is checked, and the request's rows (the largest first dimension) against ``max_rows``, before
    any tensor is expanded; the candidates of an example-list input are counted on its values.

    Raises:
      ServingError: INVALID_ARGUMENT for an empty request, a missing or an extra input, a bad tensor, or more rows
        than ``max_rows``.
    """
    if not tensors:
        raise invalid(f"the request has no inputs; the signature expects {sorted(sig.inputs)}")
    if len(tensors) != len(sig.inputs) or any(k not in tensors for k in sig.inputs):
        missing = sorted(k for k in sig.inputs if k not in tensors)
        extra = sorted(k for k in tensors if k not in sig.inputs)
        parts = ([f"missing input(s) {missing}"] if missing else []) + (
            [f"unknown input(s) {quote_all(extra)}"] if extra else [])
        raise invalid("; ".join(parts) + f"; the signature expects {sorted(sig.inputs)}")
    shapes = {k: claimed_shape(k, tensors[k], spec, max_elements) for k, spec in sig.inputs.items()}
    check_rows(max((d[0] if d else 1) for d in shapes.values()), max_rows)
    arrays = {k: _values(k, tensors[k], shapes[k]) for k in sig.inputs}
    for k in EXAMPLE_LIST_INPUTS.intersection(arrays):
        if arrays[k].dtype == object:
            check_rows(example_list_rows(arrays[k].ravel(), max_rows), max_rows, "candidates")
    return arrays


def _spec_out(model: LoadedModel, signature_name: str) -> model_pb2.ModelSpec:
    spec = model_pb2.ModelSpec(name=model.name, signature_name=signature_name or DEFAULT_SIGNATURE)
    spec.version.value = model.version
    return spec


def predict(request: predict_pb2.PredictRequest, resolve: Resolver, max_elements: int = DEFAULT_MAX_ELEMENTS,
            max_rows: int = DEFAULT_MAX_BATCH_ROWS) -> predict_pb2.PredictResponse:
    """Answers a PredictRequest: any signature, inputs by name, outputs (optionally filtered) by name."""
    import tensorflow as tf

    model = resolve(request.model_spec)
    sig = model.signature(request.model_spec.signature_name)
    arrays = check_inputs(sig, request.inputs, max_elements, max_rows)
    out = model.run(sig, arrays, list(request.output_filter))
    response = predict_pb2.PredictResponse(model_spec=_spec_out(model, sig.name))
    for k, v in out.items():
        proto = wire.numeric_tensor(v)
        response.outputs[k].CopyFrom(proto if proto is not None else tf.make_tensor_proto(v))
    return response


def serialized_examples(inp, max_rows: Optional[int] = None) -> List[bytes]:
    """The serialized tf.Examples of a tensorflow.serving.Input (ExampleList or ExampleListWithContext).

    With a context, each example is the context's serialization followed by the example's, so the example's
    features override the context's (protobuf merge semantics), as TF Serving does.

    Raises:
      ServingError: INVALID_ARGUMENT when the input holds no example, or more than ``max_rows`` (checked first).
    """
    kind = inp.WhichOneof("kind")
    examples = (inp.example_list.examples if kind == "example_list" else
                inp.example_list_with_context.examples if kind == "example_list_with_context" else [])
    if max_rows is not None:
        check_rows(len(examples), max_rows, "examples")
    if kind == "example_list_with_context":
        ctx = inp.example_list_with_context.context.SerializeToString()
        out = [ctx + e.SerializeToString() for e in examples]
    else:
        out = [e.SerializeToString() for e in examples]
    if not out:
        raise invalid("the request's input holds no examples (set input.example_list or "
                      "input.example_list_with_context)")
    return out


def _run_examples(request, resolve: Resolver, method: str, max_rows: int):
    model = resolve(request.model_spec)
    sig = model.signature(request.model_spec.signature_name, method)
    if len(sig.inputs) != 1:
        raise invalid(f"a {method} signature takes one serialized-example input; {sorted(sig.inputs)} found")
    (key, info), = sig.inputs.items()
    if info.dtype != types_pb2.DT_STRING:
        raise invalid(f"the input {key!r} of a {method} signature must be DT_STRING, not {dtype_name(info.dtype)}")
    examples = serialized_examples(request.input, max_rows)
    out = model.run(sig, {key: np.array(examples, dtype=object)})
    return model, sig, out, len(examples)


def _batch(out: Dict[str, np.ndarray], key: str, n: int) -> np.ndarray:
    v = out[key]
    if v.ndim == 2 and v.shape[1] == 1 and key == "outputs":
        v = v[:, 0]
    if v.shape[:1] != (n,):
        raise invalid(f"output {key!r} has shape {list(v.shape)}, expected {n} rows (one per example)")
    return v


def classify(request: classification_pb2.ClassificationRequest, resolve: Resolver,
             max_rows: int = DEFAULT_MAX_BATCH_ROWS):
    """Answers a ClassificationRequest with a method-``classify`` signature (outputs ``scores`` / ``classes``)."""
    model, sig, out, n = _run_examples(request, resolve, CLASSIFY_METHOD, max_rows)
    if "scores" not in out and "classes" not in out:
        raise invalid(f"a classify signature must output 'scores' or 'classes'; {sorted(out)} found")
    scores = _batch(out, "scores", n) if "scores" in out else None
    classes = _batch(out, "classes", n) if "classes" in out else None
    response = classification_pb2.ClassificationResponse(model_spec=_spec_out(model, sig.name))
    for i in range(n):
        row = response.result.classifications.add()
        k = scores.shape[1] if scores is not None else classes.shape[1]
        for j in range(k):
            c = row.classes.add()
            if classes is not None:
                label = classes[i, j]
                c.label = label.decode("utf-8", "replace") if isinstance(label, bytes) else str(label)
            if scores is not None:
                c.score = float(scores[i, j])
    return response


def regress(request: regression_pb2.RegressionRequest, resolve: Resolver, max_rows: int = DEFAULT_MAX_BATCH_ROWS):
    """Answers a RegressionRequest with a method-``regress`` signature (output ``outputs``, one float per row)."""
    model, sig, out, n = _run_examples(request, resolve, REGRESS_METHOD, max_rows)
    if "outputs" not in out:
        raise invalid(f"a regress signature must output 'outputs'; {sorted(out)} found")
    values = _batch(out, "outputs", n)
    if values.ndim != 1:
        raise invalid(f"output 'outputs' has shape {list(values.shape)}, expected [{n}] or [{n}, 1]")
    response = regression_pb2.RegressionResponse(model_spec=_spec_out(model, sig.name))
    for v in values:
        response.result.regressions.add(value=float(v))
    return response


def metadata(request: get_model_metadata_pb2.GetModelMetadataRequest, resolve: Resolver):
    """Answers GetModelMetadata; ``signature_def`` is the one field TF Serving defines (a packed SignatureDefMap)."""
    if not request.metadata_field:
        raise invalid("GetModelMetadataRequest must name at least one metadata_field ('signature_def')")
    unknown = [f for f in request.metadata_field if f != "signature_def"]
    if unknown:
        raise invalid(f"metadata field(s) {quote_all(unknown)} not supported; the supported field is 'signature_def'")
    model = resolve(request.model_spec)
    sig_map = get_model_metadata_pb2.SignatureDefMap()
    for k, v in model.signature_defs.items():
        sig_map.signature_def[k].CopyFrom(v)
    response = get_model_metadata_pb2.GetModelMetadataResponse(model_spec=_spec_out(model, ""))
    response.model_spec.ClearField("signature_name")
    response.metadata["signature_def"].Pack(sig_map)
    return response


def replay_warmup(model: LoadedModel, log) -> None:
    """Runs one warmup PredictionLog against ``model`` (whatever model name the record carries)."""
    resolve = lambda spec: model  # noqa: E731 - warmup targets the version being loaded
    kind = log.WhichOneof("log_type")
    if kind == "predict_log":
        predict(log.predict_log.request, resolve)
    elif kind == "classify_log":
        classify(log.classify_log.request, resolve)
    elif kind == "regress_log":
        regress(log.regress_log.request, resolve)
    else:
        raise invalid(f"warmup record of type {kind!r} is not supported (predict, classify, regress are)")
