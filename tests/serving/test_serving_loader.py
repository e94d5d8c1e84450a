"""serving.loader: the flat call of a signature gives what the structured call gives, whatever the input names;
small calls run on the single-threaded executor, and a graph it cannot run falls back to the default one."""

import os
import shutil

import numpy as np
import tensorflow as tf

from serving.loader import LoadedModel, flat_call, read_signature_defs
from tests.support.serving_models import example, save_model


class _Numeric(tf.Module):
    """Inputs whose names are not Python identifiers ("101", as Ali-CCP's feature ids) and not in sorted order."""

    @tf.function(input_signature=[{"101": tf.TensorSpec([None], tf.float32, name="101"),
                                   "b": tf.TensorSpec([None, 2], tf.string, name="b"),
                                   "a": tf.TensorSpec([None], tf.float32, name="a")}], autograph=False)
    def f(self, d):
        return {"y": d["101"] * 2.0 + d["a"], "z": tf.strings.length(d["b"])}


def _same(got, want):
    assert sorted(got) == sorted(want)
    for k in want:
        np.testing.assert_array_equal(got[k].numpy(), want[k].numpy())


def test_flat_call_equals_the_structured_call(tmp_path):
    save_model(str(tmp_path / "ctr" / "1"), 2.0, warmup=False)
    model = LoadedModel("ctr", 1, str(tmp_path / "ctr" / "1"))
    feeds = {"examples": tf.constant([example(1.0, "a"), example(-2.0)]),
             "x": tf.constant([0.5, 3.0]), "c": tf.constant(["a", "b"]), "inputs": tf.constant([example(1.0)])}
    for name, sig in model._signatures.items():
        fn = model._obj.signatures[name]
        call = flat_call(fn, sig.inputs)
        assert call is not None, name
        args = {k: feeds[k] for k in sig.inputs} if name != "score_candidates" else {"lists": tf.constant([b"ab"])}
        _same(call(args), fn(**args))
        _same(sig.call(args), fn(**args))

    tf.saved_model.save(_Numeric(), str(tmp_path / "numeric"), signatures={"s": _Numeric().f})
    path = str(tmp_path / "numeric")
    fn = tf.saved_model.load(path).signatures["s"]
    inputs = dict(read_signature_defs(path)["s"].inputs)
    assert sorted(inputs) == ["101", "a", "b"]
    args = {"101": tf.constant([1.0, 2.0]), "a": tf.constant([10.0, 20.0]), "b": tf.constant([["x", "yy"]] * 2)}
    call = flat_call(fn, inputs)
    _same(call(args), fn(**args))
    np.testing.assert_array_equal(call(args)["y"].numpy(), [12.0, 24.0])  # "101" and "a" not swapped


def test_without_the_pieces_the_structured_call_serves(tmp_path):
    assert flat_call(object(), {}) is None  # another TensorFlow: LoadedModel falls back to fn(**feeds)
    save_model(str(tmp_path / "ctr" / "1"), 2.0, warmup=False)
    path = os.path.join(str(tmp_path), "ctr", "1")
    fn = tf.saved_model.load(path).signatures["serving_default"]
    inputs = dict(read_signature_defs(path)["serving_default"].inputs)
    assert flat_call(fn, {**inputs, "extra": inputs["examples"]}) is None  # an input the function lacks


def _save_v1_control_flow(path):
    """A TF1 graph with low-level control flow (Switch / Merge / Enter), which the single-threaded executor refuses."""
    v1 = tf.compat.v1
    shutil.rmtree(path, ignore_errors=True)
    with tf.Graph().as_default() as graph, v1.Session(graph=graph) as sess:
        x = v1.placeholder(tf.float32, [None], name="x")
        y = v1.cond(tf.reduce_sum(x) > 0, lambda: x * 2.0, lambda: x * 3.0)
        steps = v1.while_loop(lambda i: i < 3, lambda i: i + 1, [tf.constant(0)])
        builder = v1.saved_model.Builder(path)
        builder.add_meta_graph_and_variables(sess, ["serve"], signature_def_map={
            "serving_default": v1.saved_model.signature_def_utils.predict_signature_def(
                {"x": x}, {"z": y + tf.cast(steps, tf.float32)})})
        builder.save()


def test_small_calls_run_single_threaded_and_tf1_control_flow_falls_back(tmp_path):
    save_model(str(tmp_path / "ctr" / "1"), 2.0, warmup=False)
    model = LoadedModel("ctr", 1, str(tmp_path / "ctr" / "1"))
    sig = model.signature("")
    arrays = {"examples": np.array([example(1.0, "a"), example(2.0, "b")], dtype=object)}
    np.testing.assert_allclose(model.run(sig, arrays)["ctr_logit"], [3.0, 4.0])
    assert sig.single_threaded

    path = str(tmp_path / "v1" / "1")
    _save_v1_control_flow(path)
    model = LoadedModel("v1", 1, path)
    sig = model.signature("")
    assert sig.single_threaded
    x = np.array([1.0, 2.0], np.float32)
    np.testing.assert_allclose(model.run(sig, {"x": x})["z"], [5.0, 7.0])  # answered by the default executor
    assert not sig.single_threaded  # and the signature keeps it
    np.testing.assert_allclose(model.run(sig, {"x": -x})["z"], [0.0, -3.0])
