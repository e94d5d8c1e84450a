"""Reloads an export the way another program would: a fresh interpreter that imports TensorFlow (and the TF
Serving protos for the warmup file), never tfrec.

Run as a script (``python -I export/fresh_check.py EXPORT_DIR OUT_DIR [OPS_JSON]``) by
:func:`export.validate.validate`. It

* loads the SavedModel with ``tf.saved_model.load``;
* parses every warmup record and replays it through the signature it names (Predict records by
  ``model_spec.signature_name``, Classify / Regress records through ``classification`` / ``regression``),
  checking that the request's tensors are exactly the SignatureDef's inputs (the names TF Serving matches a
  request against, e.g. ``101`` for an Ali-CCP feature, not the Python keyword ``arg_101`` that tf.function
  makes of it) with exactly their dtypes;
* replays the Classify and Regress records again as TF Serving runs them (a TF1 session, tensors by name);
* lists every op of the graph and of its function library and checks each against TensorFlow's own op registry
  (a custom op would be missing here, since no library that defines one is loaded); ``OPS_JSON`` adds the op
  list that ``saved_model_cli show --all`` printed;
* writes ``OUT_DIR/outputs.npz`` (numeric outputs of each record, ``r<i>/<key>``) and ``OUT_DIR/report.json``.

It uses only TensorFlow's own modules, so it runs with no tfrec on the path.
"""

import json
import os
import sys

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.framework import op_def_registry
from tensorflow_serving.apis import prediction_log_pb2

WARMUP = os.path.join("assets.extra", "tf_serving_warmup_requests")


def read_saved_model(export_dir):
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(export_dir, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    return proto


def graph_ops(export_dir, proto=None):
    """(ops used by the graph and its functions, names of the library's functions)."""
    proto = proto or read_saved_model(export_dir)
    ops, functions = set(), set()
    for meta in proto.meta_graphs:
        ops.update(node.op for node in meta.graph_def.node)
        for fn in meta.graph_def.library.function:
            functions.add(fn.signature.name)
            ops.update(node.op for node in fn.node_def)
    return ops, functions


def signature_inputs(proto):
    """``{signature: {input name: DType}}`` of the serve meta graph's SignatureDefs: the input names and dtypes a
    TF Serving request must match."""
    for meta in proto.meta_graphs:
        if "serve" in meta.meta_info_def.tags:
            return {name: {k: tf.dtypes.as_dtype(v.dtype) for k, v in sig.inputs.items()}
                    for name, sig in meta.signature_def.items()}
    return {}


def non_stock(ops, functions):
    return sorted(op for op in ops if op not in functions and op_def_registry.get(op) is None)


def replay(loaded, records, inputs):
    """Runs each warmup record; returns (per-record summaries, numeric outputs, errors). ``inputs`` is
    :func:`signature_inputs` of the export. A loaded signature takes its SignatureDef's input names as keywords."""
    summaries, arrays, errors = [], {}, []
    for i, log in enumerate(records):
        kind = log.WhichOneof("log_type")
        if kind == "predict_log":
            request = log.predict_log.request
            name = request.model_spec.signature_name or "serving_default"
            feeds = {k: tf.constant(tf.make_ndarray(v)) if v.dtype != tf.string.as_datatype_enum
                     else tf.constant(tf.make_ndarray(v).astype(object).tolist(), tf.string)
                     for k, v in request.inputs.items()}
            wire = {k: tf.dtypes.as_dtype(v.dtype) for k, v in request.inputs.items()}
        elif kind in ("classify_log", "regress_log"):
            request = getattr(log, kind).request
            name = "classification" if kind == "classify_log" else "regression"
            serialized = [e.SerializeToString() for e in request.input.example_list.examples]
            feeds = {"inputs": tf.constant(serialized, tf.string)}
            wire = {"inputs": tf.string}
        else:
            errors.append(f"record {i}: unsupported log type {kind!r}")
            continue
        if name not in loaded.signatures:
            errors.append(f"record {i}: signature {name!r} not in the export ({sorted(loaded.signatures)})")
            continue
        fn = loaded.signatures[name]
        expected = inputs.get(name, {})
        if set(wire) != set(expected):
            errors.append(f"record {i} ({name}): inputs {sorted(wire)} != signature inputs {sorted(expected)}")
            continue
        bad = sorted(k for k in wire if wire[k] != expected[k])
        if bad:
            errors.append(f"record {i} ({name}): dtypes of {bad} differ from the signature's")
            continue
        outputs = fn(**feeds)
        summary = {"record": i, "kind": kind, "signature": name, "outputs": {}}
        for key, value in outputs.items():
            value = value.numpy()
            summary["outputs"][key] = {"dtype": str(value.dtype), "shape": list(value.shape)}
            if value.dtype.kind in "fiu":
                arrays[f"r{i}/{key}"] = value
            else:
                summary["outputs"][key]["values"] = sorted({v.decode() for v in value.reshape(-1)})
        summaries.append(summary)
    return summaries, arrays, errors


def session_replay(export_dir, records, arrays):
    """Replays the Classify and Regress records the way TF Serving runs them: the SavedModel loaded into a TF1
    session (``tf.compat.v1.saved_model.load``, which runs the init op that fills the lookup tables), the
    serialized examples fed to the signature's input tensor by name, its output tensors fetched by name.
    Returns (errors: outputs that differ from the TF2 replay's ``arrays`` by more than 1e-6 or failed runs,
    number of outputs compared)."""
    errors, compared = [], 0
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        meta = tf.compat.v1.saved_model.load(session, ["serve"], export_dir)
        for i, log in enumerate(records):
            kind = log.WhichOneof("log_type")
            if kind not in ("classify_log", "regress_log"):
                continue
            signature = meta.signature_def["classification" if kind == "classify_log" else "regression"]
            serialized = [e.SerializeToString() for e in getattr(log, kind).request.input.example_list.examples]
            fetches = {k: v.name for k, v in signature.outputs.items()}
            try:
                got = session.run(fetches, feed_dict={signature.inputs["inputs"].name: serialized})
            except tf.errors.OpError as e:
                errors.append(f"record {i}: session run failed: {e.message}")
                continue
            for key, value in got.items():
                want = arrays.get(f"r{i}/{key}")
                if want is None:
                    continue
                compared += 1
                if value.shape != want.shape or not np.allclose(value, want, rtol=0.0, atol=1e-6):
                    errors.append(f"record {i}: session output {key} differs from tf.saved_model.load's")
    return errors, compared


def main(argv):
    export_dir, out_dir = argv[1], argv[2]
    cli_ops = json.load(open(argv[3])) if len(argv) > 3 else []
    report = {"tfrec_imported": any(m == "tfrec" or m.startswith("tfrec.") for m in sys.modules),
              "errors": []}
    loaded = tf.saved_model.load(export_dir)
    proto = read_saved_model(export_dir)
    inputs = signature_inputs(proto)
    report["signatures"] = {
        name: {"inputs": {k: v.name for k, v in inputs.get(name, {}).items()},
               "outputs": {k: [v.dtype.name, v.shape.as_list()] for k, v in fn.structured_outputs.items()}}
        for name, fn in loaded.signatures.items()}
    records = [prediction_log_pb2.PredictionLog.FromString(r.numpy())
               for r in tf.data.TFRecordDataset(os.path.join(export_dir, WARMUP))]
    report["warmup_records"] = len(records)
    summaries, arrays, errors = replay(loaded, records, inputs)
    session_errors, report["session_outputs_compared"] = session_replay(export_dir, records, arrays)
    errors += session_errors
    report["records"], report["errors"] = summaries, report["errors"] + errors
    ops, functions = graph_ops(export_dir, proto)
    report["ops"] = sorted(ops - functions)
    report["functions"] = sorted(functions)
    report["non_stock_ops"] = non_stock(ops | set(cli_ops), functions)
    report["tfrec_imported"] = report["tfrec_imported"] or any(
        m == "tfrec" or m.startswith("tfrec.") for m in sys.modules)
    os.makedirs(out_dir, exist_ok=True)
    np.savez(os.path.join(out_dir, "outputs.npz"), **arrays)
    with open(os.path.join(out_dir, "report.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
