"""One servable: a SavedModel version loaded with its SignatureDefs, validated inputs, and warmup replay.

The SignatureDefs (inputs, outputs, dtypes, shapes and method names) are read from the MetaGraphDef in
``saved_model.pb``, as TF Serving reads them; the callables come from ``tf.saved_model.load``, which serves
TF2 and TF1 SavedModels alike.
"""

from __future__ import annotations

import collections
import os
from typing import Dict, Mapping, Optional, Sequence

import numpy as np

# The signature and method names and the warmup file layout are export's (one source for writer and reader).
from export.signatures import CLASSIFY_METHOD, PREDICT_METHOD, REGRESS_METHOD  # noqa: F401 - re-exported
from export.signatures import SERVING_DEFAULT as DEFAULT_SIGNATURE
from export.warmup import MAX_WARMUP_RECORDS, read_records, warmup_path
from serving.errors import failed_precondition, from_exception, invalid, quote, quote_all


def read_signature_defs(path: str):
    """The ``{name: SignatureDef}`` map of the SavedModel in ``path`` (first MetaGraphDef, the serving one).

    Raises:
      FileNotFoundError: neither ``saved_model.pb`` nor ``saved_model.pbtxt`` is in ``path``.
    """
    from google.protobuf import text_format
    from tensorflow.core.protobuf import saved_model_pb2

    sm = saved_model_pb2.SavedModel()
    pb, pbtxt = os.path.join(path, "saved_model.pb"), os.path.join(path, "saved_model.pbtxt")
    if os.path.exists(pb):
        with open(pb, "rb") as f:
            sm.ParseFromString(f.read())
    elif os.path.exists(pbtxt):
        with open(pbtxt, "r", encoding="utf-8") as f:
            text_format.Parse(f.read(), sm)
    else:
        raise FileNotFoundError(f"no saved_model.pb in {path}")
    for meta in sm.meta_graphs:
        if "serve" in meta.meta_info_def.tags or len(sm.meta_graphs) == 1:
            return dict(meta.signature_def)
    raise ValueError(f"no MetaGraphDef tagged 'serve' in {path}")


def is_ready(path: str) -> bool:
    """Whether a version directory holds a complete SavedModel (its graph file is written last)."""
    return any(os.path.exists(os.path.join(path, f)) for f in ("saved_model.pb", "saved_model.pbtxt"))


SMALL_CALL_ROWS = 512  # calls of at most this many rows run on TensorFlow's single-threaded executor


class Signature:
    """One signature of a loaded version, with what every call needs computed once at load.

    Attributes:
      name: the signature's name.
      sig_def: its ``SignatureDef`` proto (as ``saved_model.pb`` holds it).
      inputs: ``{input name: TensorInfo}``; ``outputs``: the output names.
      dtypes: ``{input name: tf.DType}``.
      single_threaded: whether small calls run on TensorFlow's single-threaded executor (turned off for good when
        the graph has TF1 control flow, which that executor does not run).
    """

    def __init__(self, name: str, sig_def, fn):
        import tensorflow as tf

        self.name, self.sig_def = name, sig_def
        self.inputs = dict(sig_def.inputs)
        self.outputs = frozenset(sig_def.outputs)
        self.dtypes = {k: tf.dtypes.as_dtype(v.dtype) for k, v in self.inputs.items()}
        flat = flat_call(fn, self.inputs)
        self._call = flat or (lambda feeds: fn(**feeds))
        self._executor = _single_threaded_executor() if flat is not None else None
        self.single_threaded = self._executor is not None

    def call(self, feeds: Mapping[str, object], rows: Optional[int] = None) -> Dict[str, object]:
        """``{output name: Tensor}`` of the function on ``feeds`` (``{input name: Tensor}``).

        A call of at most ``SMALL_CALL_ROWS`` rows runs its ops one after another on the calling thread
        (TensorFlow's ``SINGLE_THREADED_EXECUTOR``; a kernel still splits its own work over the intra-op
        threads). The default executor hands each op to the inter-op thread pool, whose threads a server finds
        asleep after the gap between two calls: on the shared 2-core bench host, served DCN V2 calls of 64 rows,
        and of 1 and 64 rows at concurrency 8, took 0.2-0.35 ms less server CPU each on this executor (one row
        at concurrency 1: within the noise). Bigger batches keep the default executor, which can run
        independent ops on idle cores.
        """
        if self.single_threaded and rows is not None and rows <= SMALL_CALL_ROWS:
            import tensorflow as tf

            try:
                with self._executor("SINGLE_THREADED_EXECUTOR"):
                    return self._call(feeds)
            except tf.errors.FailedPreconditionError as e:
                if "Single-threaded executor" not in str(e):
                    raise
                self.single_threaded = False  # low-level (TF1) control flow: the default executor runs it
        return self._call(feeds)


def _single_threaded_executor():
    """``context.function_executor_type`` (sets the executor of the eager function calls in its scope), or None
    where this TensorFlow lacks it."""
    try:
        from tensorflow.python.eager import context

        return context.function_executor_type
    except (ImportError, AttributeError):
        return None


def flat_call(fn, inputs: Mapping[str, object]):
    """``call({input name: Tensor}) -> {output name: Tensor}`` running the signature function ``fn`` on its flat
    inputs, or None where this TensorFlow lacks the pieces (the caller then uses ``fn(**feeds)``).

    ``fn(**feeds)`` binds the keyword arguments to the function's structured signature and flattens its captured
    variables on every call (for DCN V2's 68 captures: ~0.2 ms of a one-row call; bench_serving.py). Here the
    order of the flat inputs is learnt once: from TensorFlow's own binding (``canonicalize_function_inputs``) run
    on probe tensors, or for a TF1 graph's pruned function (no structured signature) from its flat signature's
    keywords; each call then passes ``[inputs in that order] + captures`` to the function TensorFlow runs
    (``ConcreteFunction._call_flat`` does the same when no gradient tape records, as in a server).
    """
    try:
        run = fn._inference_function.call_preflattened
        captures = list(fn.captured_inputs)
        order = _flat_order(fn, inputs) or _keyword_order(fn, inputs)
    except Exception:  # noqa: BLE001 - another TensorFlow, a composite input: the structured call still works
        return None
    if sorted(order) != sorted(inputs):
        return None
    return lambda feeds: run([feeds[k] for k in order] + captures)


def _flat_order(fn, inputs):
    import tensorflow as tf
    from tensorflow.python.eager.polymorphic_function import function_type_utils

    probes = {}
    for k, info in inputs.items():
        dims = [] if info.tensor_shape.unknown_rank else [max(d.size, 1) for d in info.tensor_shape.dim]
        probes[k] = tf.zeros(dims, tf.dtypes.as_dtype(info.dtype))
    try:
        bound = function_type_utils.canonicalize_function_inputs((), probes, fn.function_type)
    except TypeError:  # no structured signature (a TF1 graph's pruned function)
        return None
    names = {id(t): k for k, t in probes.items()}
    return [names[id(t)] for t in fn.function_type.unpack_inputs(bound)]


def _keyword_order(fn, inputs):
    from tensorflow.core.function.polymorphism.function_type import sanitize_arg_name

    by_name = {sanitize_arg_name(k): k for k in inputs}
    return [by_name[sanitize_arg_name(str(k))] for k in fn._arg_keywords]


class LoadedModel:
    """A loaded SavedModel version.

    Args:
      name: model name.
      version: integer version (the directory name).
      path: the version directory.

    Attributes:
      signature_defs: ``{signature name: SignatureDef proto}``.
    """

    def __init__(self, name: str, version: int, path: str):
        import tensorflow as tf

        self.name, self.version, self.path = name, int(version), path
        self.signature_defs = read_signature_defs(path)
        self._obj = tf.saved_model.load(path, tags=["serve"])
        self._signatures = {k: Signature(k, self.signature_defs[k], self._obj.signatures[k])
                            for k in self.signature_defs if k in self._obj.signatures}

    def signature(self, name: str, method: Optional[str] = None) -> Signature:
        """The signature called ``name`` (empty = ``serving_default``), checked against ``method``.

        Raises:
          ServingError: an unknown signature is FAILED_PRECONDITION for Predict (``method`` None) and
            INVALID_ARGUMENT for Classify / Regress, as in TF Serving (predict_util.cc: "Serving signature key
            not found"; classifier.cc / regressor.cc: "No signature was found with the name"); a signature of
            another method is INVALID_ARGUMENT.
        """
        sig = self._signatures.get(name or DEFAULT_SIGNATURE)
        if sig is None:
            text = (f"signature {quote(name or DEFAULT_SIGNATURE)} not found in model {quote(self.name)} version "
                    f"{self.version}; signatures: {', '.join(sorted(self._signatures))}")
            raise failed_precondition(text) if method is None else invalid(text)
        if method is not None and sig.sig_def.method_name != method:
            raise invalid(f"signature {quote(sig.name)} has method {sig.sig_def.method_name!r}, expected {method!r}")
        return sig

    def run(self, sig: Signature, inputs: Mapping[str, np.ndarray],
            output_filter: Sequence[str] = ()) -> Dict[str, np.ndarray]:
        """Runs ``sig`` (from :meth:`signature`) on validated ``inputs`` (see ``serving.handlers.check_inputs``).

        Returns:
          ``{output name: ndarray}``, restricted to ``output_filter`` (in its order) when given.

        Raises:
          ServingError: INVALID_ARGUMENT for an unknown or a repeated output in ``output_filter`` (TF Serving's
            predict_util.cc: "output tensor alias not found", "duplicate output tensor alias"), or the status of
            TensorFlow's error.
        """
        import tensorflow as tf

        if output_filter:
            unknown = [k for k in output_filter if k not in sig.outputs]
            if unknown:
                raise invalid(f"output_filter names unknown output(s) {quote_all(unknown)}; outputs of "
                              f"{quote(sig.name)}: {sorted(sig.outputs)}")
            if len(set(output_filter)) != len(output_filter):
                repeated = sorted(k for k, n in collections.Counter(output_filter).items() if n > 1)
                raise invalid(f"output_filter names output(s) {quote_all(repeated)} more than once")
        try:
            feeds = {k: tf.convert_to_tensor(v, dtype=sig.dtypes[k]) for k, v in inputs.items()}
            out = sig.call(feeds, max((v.shape[0] if v.ndim else 1) for v in inputs.values()) if inputs else 1)
            return {k: out[k].numpy() for k in (output_filter or out)}
        except Exception as e:  # noqa: BLE001 - every model failure becomes a status code
            raise from_exception(e) from e

    def warmup(self, handle) -> int:
        """Replays ``assets.extra/tf_serving_warmup_requests`` through ``handle(model, PredictionLog)``.

        Returns:
          the number of records replayed (TF Serving reads at most 1000).

        Raises:
          ServingError: a warmup request failed (TF Serving then refuses to load the version).
        """
        path = warmup_path(self.path)
        if not os.path.exists(path):
            return 0
        records = read_records(path, limit=MAX_WARMUP_RECORDS)
        for log in records:
            handle(self, log)
        return len(records)
