"""A client of TF Serving's PredictionService (stock TF Serving or ``serving.server``), with clear errors.

It reads signature and input names from the model's metadata instead of hard-coding them, sets a deadline on
every call, retries UNAVAILABLE with exponential backoff and jitter, and bounds the calls in flight.

Example::

    with PredictionClient("localhost:8500") as client:
        out = client.predict_examples("ctr", serialized_examples)   # {"ctr": [n], "ctr_logit": [n]}
        scores, labels = client.classify("ctr", serialized_examples)
"""

from __future__ import annotations

import random
import sys
import threading
import time
from concurrent import futures
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import grpc
import numpy as np
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2, get_model_status_pb2,
                                     model_service_pb2_grpc, predict_pb2, prediction_service_pb2_grpc,
                                     regression_pb2)

from export.signatures import CLASSIFY_METHOD, REGRESS_METHOD, SERVING_DEFAULT
from serving import wire

Example = Union[bytes, "tf.train.Example"]  # noqa: F821


class PredictionError(Exception):
    """A call failed. ``code`` is the gRPC status code; the message names the call, model, server and reason."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code


class PredictionClient:
    """PredictionService and ModelService calls with deadlines, retries and bounded concurrency.

    Args:
      target: ``host:port`` of the server.
      timeout: deadline of each call attempt, in seconds.
      retries: extra attempts after an UNAVAILABLE answer (the server is starting, restarting, overloaded).
      backoff: first wait between attempts in seconds; doubles each attempt (with jitter), up to ``max_backoff``.
      max_backoff: the longest wait between attempts.
      max_concurrency: calls in flight at once from this client (more callers wait their turn).
      max_message_bytes: the largest message sent or received.
    """

    def __init__(self, target: str, timeout: float = 10.0, retries: int = 4, backoff: float = 0.1,
                 max_backoff: float = 2.0, max_concurrency: int = 8, max_message_bytes: int = 256 << 20):
        if timeout <= 0:
            raise ValueError(f"`timeout` must be > 0. Received: timeout={timeout}")
        if retries < 0 or max_concurrency < 1:
            raise ValueError(f"`retries` must be >= 0 and `max_concurrency` >= 1. Received: retries={retries}, "
                             f"max_concurrency={max_concurrency}")
        self.target, self.timeout, self.retries = target, float(timeout), int(retries)
        self.backoff, self.max_backoff = float(backoff), float(max_backoff)
        self.max_concurrency = int(max_concurrency)
        self._slots = threading.BoundedSemaphore(self.max_concurrency)
        self._channel = grpc.insecure_channel(target, options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes)])
        self._predict = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        # Predict takes the request already serialized (serving.wire); the answer is a PredictResponse.
        self._predict_bytes = self._channel.unary_unary(
            "/tensorflow.serving.PredictionService/Predict", request_serializer=None,
            response_deserializer=predict_pb2.PredictResponse.FromString)
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)
        self._metadata: Dict[Tuple[str, Optional[int]], Dict[str, object]] = {}

    def close(self) -> None:
        """Closes the channel."""
        self._channel.close()

    def __enter__(self) -> "PredictionClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------ calls

    def _call(self, method: str, rpc, request, model: str):
        attempt = 0
        while True:
            try:
                with self._slots:
                    return rpc(request, timeout=self.timeout)
            except grpc.RpcError as e:
                code, details = e.code(), e.details()
                if code == grpc.StatusCode.UNAVAILABLE and attempt < self.retries:
                    wait = min(self.max_backoff, self.backoff * 2 ** attempt) * (0.5 + random.random() / 2)
                    time.sleep(wait)
                    attempt += 1
                    continue
                where = f"{method} on model {model!r} at {self.target}"
                if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                    msg = f"{where} did not answer within {self.timeout:g} s (DEADLINE_EXCEEDED)"
                elif code == grpc.StatusCode.UNAVAILABLE:
                    msg = f"{where} failed: server unavailable after {attempt + 1} attempt(s): {details}"
                else:
                    msg = f"{where} failed with {code.name}: {details}"
                raise PredictionError(code, msg) from None

    @staticmethod
    def _spec(spec, model: str, version: Optional[int], signature: Optional[str]) -> None:
        spec.name = model
        if version is not None:
            spec.version.value = int(version)
        if signature:
            spec.signature_name = signature

    def metadata(self, model: str, version: Optional[int] = None, refresh: bool = False) -> Dict[str, object]:
        """``{signature name: SignatureDef}`` of the model (cached; ``refresh`` asks again)."""
        key = (model, version)
        if refresh or key not in self._metadata:
            req = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
            self._spec(req.model_spec, model, version, None)
            resp = self._call("GetModelMetadata", self._predict.GetModelMetadata, req, model)
            sig_map = get_model_metadata_pb2.SignatureDefMap()
            resp.metadata["signature_def"].Unpack(sig_map)
            self._metadata[key] = {k: v for k, v in sig_map.signature_def.items() if not k.startswith("__")}
        return self._metadata[key]

    def signature_for(self, model: str, method: str = "predict", version: Optional[int] = None) -> Tuple[str, str]:
        """``(signature name, input name)`` of the model's signature that takes serialized tf.Examples.

        ``method`` is ``predict`` (``serving_default`` when it takes one DT_STRING input, else the first such
        signature), ``classify`` or ``regress`` (the first signature of that method).

        Raises:
          PredictionError: NOT_FOUND when the model has no such signature.
        """
        sigs = self.metadata(model, version)
        want = {"classify": CLASSIFY_METHOD, "regress": REGRESS_METHOD}.get(method)
        names = sorted(sigs, key=lambda n: (n != SERVING_DEFAULT, n))
        for name in names:
            sig = sigs[name]
            if want is not None and sig.method_name != want:
                continue
            if len(sig.inputs) == 1 and next(iter(sig.inputs.values())).dtype == types_pb2.DT_STRING:
                return name, next(iter(sig.inputs))
        raise PredictionError(grpc.StatusCode.NOT_FOUND,
                              f"model {model!r} at {self.target} has no {method} signature taking serialized "
                              f"tf.Examples; its signatures: {sorted(sigs)}")

    def predict_with_spec(self, model: str, inputs: Mapping[str, object], signature: Optional[str] = None,
                          version: Optional[int] = None, output_filter: Sequence[str] = ()):
        """Predict; returns ``({output name: ndarray}, ModelSpec of the version that answered)``."""
        header = predict_pb2.PredictRequest(output_filter=list(output_filter))
        self._spec(header.model_spec, model, version, signature)
        req = wire.predict_request(header, {k: request_tensor(v) for k, v in inputs.items()})
        resp = self._call("Predict", self._predict_bytes, req, model)
        return {k: wire.to_ndarray(v) for k, v in resp.outputs.items()}, resp.model_spec

    def predict(self, model: str, inputs: Mapping[str, object], signature: Optional[str] = None,
                version: Optional[int] = None, output_filter: Sequence[str] = ()) -> Dict[str, np.ndarray]:
        """Predict on a signature with named inputs (arrays, lists or TensorProtos); returns its outputs."""
        return self.predict_with_spec(model, inputs, signature, version, output_filter)[0]

    def predict_examples(self, model: str, examples: Sequence[Example], signature: Optional[str] = None,
                         version: Optional[int] = None) -> Dict[str, np.ndarray]:
        """Predict on serialized tf.Examples; the signature and its input name come from the metadata."""
        sig, key = self._example_signature(model, "predict", signature, version)
        return self.predict(model, {key: _serialized(examples)}, sig, version)

    def _example_signature(self, model, method, signature, version):
        if signature:
            sig = self.metadata(model, version).get(signature)
            if sig is None:
                raise PredictionError(grpc.StatusCode.NOT_FOUND, f"model {model!r} at {self.target} has no "
                                      f"signature {signature!r}; its signatures: {sorted(self.metadata(model, version))}")
            return signature, next(iter(sig.inputs))
        return self.signature_for(model, method, version)

    def _input(self, req, examples: Sequence[Example]) -> None:
        import tensorflow as tf

        for e in examples:
            req.input.example_list.examples.add().CopyFrom(e if isinstance(e, tf.train.Example)
                                                           else tf.train.Example.FromString(e))

    def classify(self, model: str, examples: Sequence[Example], signature: Optional[str] = None,
                 version: Optional[int] = None) -> Tuple[np.ndarray, List[List[str]]]:
        """Classify; returns ``(scores [n, classes], labels [n][classes])``."""
        req = classification_pb2.ClassificationRequest()
        self._spec(req.model_spec, model, version, self._example_signature(model, "classify", signature, version)[0])
        self._input(req, examples)
        resp = self._call("Classify", self._predict.Classify, req, model)
        rows = resp.result.classifications
        return (np.array([[c.score for c in r.classes] for r in rows], np.float32),
                [[c.label for c in r.classes] for r in rows])

    def regress(self, model: str, examples: Sequence[Example], signature: Optional[str] = None,
                version: Optional[int] = None) -> np.ndarray:
        """Regress; returns one float per example."""
        req = regression_pb2.RegressionRequest()
        self._spec(req.model_spec, model, version, self._example_signature(model, "regress", signature, version)[0])
        self._input(req, examples)
        resp = self._call("Regress", self._predict.Regress, req, model)
        return np.array([r.value for r in resp.result.regressions], np.float32)

    def status(self, model: str, version: Optional[int] = None) -> List[Tuple[int, str, str]]:
        """ModelService.GetModelStatus: ``[(version, state name, error message)]``."""
        req = get_model_status_pb2.GetModelStatusRequest()
        self._spec(req.model_spec, model, version, None)
        resp = self._call("GetModelStatus", self._models.GetModelStatus, req, model)
        names = get_model_status_pb2.ModelVersionStatus.State
        return [(s.version, names.Name(s.state), s.status.error_message) for s in resp.model_version_status]

    def map_predict_examples(self, model: str, batches: Sequence[Sequence[Example]],
                             signature: Optional[str] = None) -> List[Dict[str, np.ndarray]]:
        """:meth:`predict_examples` on each batch, ``max_concurrency`` batches in flight; results in order."""
        with futures.ThreadPoolExecutor(self.max_concurrency) as pool:
            return list(pool.map(lambda b: self.predict_examples(model, b, signature), batches))


def request_tensor(value):
    """A request input as :func:`serving.wire.predict_request` takes it: a TensorProto as is, a non-empty list of
    bytes (serialized examples) as is (DT_STRING, written straight to the wire), a numeric array as a TensorProto
    with ``tensor_content``, anything else as ``tf.make_tensor_proto`` makes it."""
    from tensorflow.core.framework import tensor_pb2

    if isinstance(value, tensor_pb2.TensorProto):
        return value
    if isinstance(value, (list, tuple)) and value and set(map(type, value)) == {bytes}:
        return value
    if isinstance(value, np.ndarray):
        proto = wire.numeric_tensor(value)
        if proto is not None:
            return proto
    import tensorflow as tf

    return tf.make_tensor_proto(value)


def _serialized(examples: Sequence[Example]) -> List[bytes]:
    return [e if isinstance(e, bytes) else e.SerializeToString() for e in examples]


def examples_from_tsv(path: str, signature_def=None) -> List[bytes]:
    """Serialized tf.Examples of every row of a TSV file whose header names the features (an empty cell is
    absent), or of a headerless file of raw Criteo Kaggle rows; gzip-compressed or not.

    The reading is :func:`serving.predict_input.read_examples` (which streams; this collects every row).

    Args:
      path: the TSV file.
      signature_def: a SignatureDef with one input per raw feature (``predict_raw``) giving each feature's
        dtype (a header that names none of its inputs is refused); without it, a column whose cells all parse
        as numbers is a float feature, others are strings.

    Raises:
      ValueError: a cell does not parse as its feature's dtype, a row has the wrong number of cells, or the
        first line is neither a header of features nor a Criteo row.
    """
    from serving.predict_input import read_examples

    return [e for batch in read_examples(path, signature_def, batch_size=sys.maxsize) for e in batch]


def examples_from_tfrecord(path: str, limit: Optional[int] = None) -> List[bytes]:
    """Serialized tf.Examples from a TFRecord file (GZIP when its content is gzip-compressed)."""
    from serving.predict_input import tfrecord_rows

    return list(tfrecord_rows(path, limit))
