"""One servable: a SavedModel version loaded with its SignatureDefs, validated inputs, and warmup replay.

The SignatureDefs (inputs, outputs, dtypes, shapes and method names) are read from the MetaGraphDef in
``saved_model.pb``, as TF Serving reads them; the callables come from ``tf.saved_model.load``, which serves
TF2 and TF1 SavedModels alike.
"""

from __future__ import annotations

import os
from typing import Dict, Mapping, Optional

import numpy as np

# The signature and method names and the warmup file layout are export's (one source for writer and reader).
from export.signatures import CLASSIFY_METHOD, PREDICT_METHOD, REGRESS_METHOD  # noqa: F401 - re-exported
from export.signatures import SERVING_DEFAULT as DEFAULT_SIGNATURE
from export.warmup import MAX_WARMUP_RECORDS, read_records, warmup_path
from serving.errors import from_exception, invalid, not_found


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
        self._functions = {k: self._obj.signatures[k] for k in self.signature_defs if k in self._obj.signatures}

    def signature(self, name: str, method: Optional[str] = None):
        """The SignatureDef called ``name`` (empty = ``serving_default``), checked against ``method``.

        Raises:
          ServingError: NOT_FOUND for an unknown signature; INVALID_ARGUMENT when its method is not ``method``.
        """
        name = name or DEFAULT_SIGNATURE
        sig = self.signature_defs.get(name)
        if sig is None or name not in self._functions:
            raise not_found(f"signature {name!r} not found in model {self.name!r} version {self.version}; "
                            f"signatures: {', '.join(sorted(self._functions))}")
        if method is not None and sig.method_name != method:
            raise invalid(f"signature {name!r} has method {sig.method_name!r}, expected {method!r}")
        return sig

    def run(self, name: str, inputs: Mapping[str, np.ndarray],
            output_filter: Optional[list] = None) -> Dict[str, np.ndarray]:
        """Runs signature ``name`` on validated ``inputs`` (see :func:`serving.tensors.check_inputs`).

        Returns:
          ``{output name: ndarray}``, restricted to ``output_filter`` when given.

        Raises:
          ServingError: the signature or a filtered output is unknown, or TensorFlow rejected the input.
        """
        import tensorflow as tf

        sig = self.signature(name)
        if output_filter:
            unknown = sorted(set(output_filter) - set(sig.outputs))
            if unknown:
                raise invalid(f"output_filter names unknown output(s) {unknown}; outputs of {name!r}: "
                              f"{sorted(sig.outputs)}")
        fn = self._functions[name or DEFAULT_SIGNATURE]
        try:
            feeds = {k: tf.convert_to_tensor(v, dtype=tf.dtypes.as_dtype(sig.inputs[k].dtype))
                     for k, v in inputs.items()}
            out = fn(**feeds)
            keys = output_filter or list(out)
            return {k: out[k].numpy() for k in keys}
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
