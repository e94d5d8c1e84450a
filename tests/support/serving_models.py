"""Tiny SavedModels with tfrec's serving signature contract, for the serving tests.

Each model parses serialized ``tf.Example`` with one float feature ``x`` and one string feature ``c``:
``ctr_logit = scale * x + [c == "a"]`` and ``ctr = sigmoid(ctr_logit)``. ``scale`` differs per version, so a test
can tell which version answered. Signatures: ``serving_default`` (``examples`` -> ``ctr``, ``ctr_logit``),
``predict_raw`` (``x``, ``c``), ``classification`` (tensorflow/serving/classify: ``inputs`` -> ``scores`` [n, 2],
``classes``), ``regression`` (tensorflow/serving/regress: ``inputs`` -> ``outputs``) and ``score_candidates``
(``lists``, serialized ExampleListWithContext as tfrec's pre-ranking export takes them -> ``bytes``, the length
of each list: the server counts the candidates, the model does not need to).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2
from tests.support import ROOT

METHODS = {"classification": "tensorflow/serving/classify", "regression": "tensorflow/serving/regress"}


def example(x=None, c=None) -> bytes:
    """A serialized tf.Example with the given features (absent when None)."""
    feats = {}
    if x is not None:
        feats["x"] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(x)]))
    if c is not None:
        feats["c"] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[c.encode()]))
    return tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString()


def expected_logit(scale: float, x, c) -> np.ndarray:
    """The NumPy oracle of the models' ``ctr_logit``."""
    return scale * np.asarray(x, np.float32) + (np.asarray(c) == "a").astype(np.float32)


class _Model(tf.Module):
    def __init__(self, scale: float):
        super().__init__()
        self.scale = tf.Variable(scale, dtype=tf.float32)

    def _heads(self, x, c):
        logit = self.scale * x + tf.cast(tf.equal(c, "a"), tf.float32)
        return {"ctr": tf.sigmoid(logit), "ctr_logit": logit}

    def _parse(self, serialized):
        f = tf.io.parse_example(serialized, {"x": tf.io.FixedLenFeature([], tf.float32, 0.0),
                                             "c": tf.io.FixedLenFeature([], tf.string, "")})
        return self._heads(f["x"], f["c"])

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serving_default(self, examples):
        return self._parse(examples)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x"),
                                  tf.TensorSpec([None], tf.string, name="c")])
    def predict_raw(self, x, c):
        return self._heads(x, c)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def classification(self, inputs):
        p = self._parse(inputs)["ctr"]
        classes = tf.tile(tf.constant([["0", "1"]]), [tf.shape(p)[0], 1])
        return {"scores": tf.stack([1.0 - p, p], axis=1), "classes": classes}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def regression(self, inputs):
        return {"outputs": self._parse(inputs)["ctr"]}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="lists")])
    def score_candidates(self, lists):
        return {"bytes": tf.strings.length(lists)}


def save_model(path: str, scale: float, warmup: bool = True) -> str:
    """Writes the model to ``path`` (a version directory), with classify / regress method names and warmup."""
    m = _Model(scale)
    sigs = {"serving_default": m.serving_default, "predict_raw": m.predict_raw,
            "classification": m.classification, "regression": m.regression, "score_candidates": m.score_candidates}
    tmp = path + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tf.saved_model.save(m, tmp, signatures=sigs)
    # tf.saved_model.save always writes the predict method; TF Serving's Classify and Regress APIs look the
    # method name up in the MetaGraphDef's SignatureDef, so set it there.
    pb = os.path.join(tmp, "saved_model.pb")
    sm = saved_model_pb2.SavedModel()
    with open(pb, "rb") as f:
        sm.ParseFromString(f.read())
    for name, method in METHODS.items():
        sm.meta_graphs[0].signature_def[name].method_name = method
    with open(pb, "wb") as f:
        f.write(sm.SerializeToString())
    if warmup:
        os.makedirs(os.path.join(tmp, "assets.extra"), exist_ok=True)
        with tf.io.TFRecordWriter(os.path.join(tmp, "assets.extra", "tf_serving_warmup_requests")) as w:
            req = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name="warmup",
                                                                            signature_name="serving_default"))
            req.inputs["examples"].CopyFrom(tf.make_tensor_proto([example(1.0, "a"), example(0.0, "b")]))
            w.write(prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=req)).SerializeToString())
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)  # lands atomically, as an export does
    return path


def predict_request(model="ctr", examples=None, signature="", version=None):
    """A PredictRequest of serialized examples (default: two valid ones) to ``model``."""
    req = predict_pb2.PredictRequest()
    req.model_spec.name = model
    req.model_spec.signature_name = signature
    if version is not None:
        req.model_spec.version.value = version
    if examples is None:
        examples = [example(1.0, "a"), example(2.0, "b")]
    req.inputs["examples"].CopyFrom(tf.make_tensor_proto(examples, dtype=tf.string))
    return req


def check_answers(stub, scale: float = 2.0, model: str = "ctr") -> None:
    """Asserts that a correct request gets the oracle's logits."""
    resp = stub.Predict(predict_request(model), timeout=10)
    np.testing.assert_allclose(tf.make_ndarray(resp.outputs["ctr_logit"]), expected_logit(scale, [1.0, 2.0], ["a", "b"]),
                               rtol=1e-6)


def save_v1_model(path: str, scale: float) -> str:
    """The same model written by TF1's SavedModelBuilder with its classify / regress SignatureDef helpers."""
    v1 = tf.compat.v1
    with tf.Graph().as_default() as graph, v1.Session(graph=graph) as sess:
        serialized = v1.placeholder(tf.string, [None], name="examples")
        f = tf.io.parse_example(serialized, {"x": tf.io.FixedLenFeature([], tf.float32, 0.0),
                                             "c": tf.io.FixedLenFeature([], tf.string, "")})
        w = v1.get_variable("scale", initializer=tf.constant(scale))
        logit = w * f["x"] + tf.cast(tf.equal(f["c"], "a"), tf.float32)
        p = tf.sigmoid(logit)
        sess.run(v1.global_variables_initializer())
        sigs = v1.saved_model.signature_def_utils
        builder = v1.saved_model.Builder(path)
        builder.add_meta_graph_and_variables(sess, [v1.saved_model.tag_constants.SERVING], signature_def_map={
            "serving_default": sigs.predict_signature_def({"examples": serialized}, {"ctr": p, "ctr_logit": logit}),
            "classification": sigs.classification_signature_def(serialized, None, tf.stack([1.0 - p, p], 1)),
            "regression": sigs.regression_signature_def(serialized, p)})
        builder.save()
    return path


def start_serve(base_path: str, *args: str):
    """``tfrec serve --model-name ctr --base-path BASE --port 0 ARGS`` in its own process.

    Returns:
      ``(process, first line it printed)``; the line is ``serving ctr (versions [...]) on HOST:PORT`` once it
      serves. The caller stops the process.
    """
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)
    proc = subprocess.Popen([sys.executable, "-m", "tfrec.cli", "serve", "--model-name", "ctr", "--base-path",
                             base_path, "--port", "0", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    return proc, proc.stdout.readline()
