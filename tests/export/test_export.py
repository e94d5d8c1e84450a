"""SavedModel export: signatures (names, dtypes, shapes, method names), raw Criteo rows in -> the Keras model's
probabilities out, warmup records, validation in a fresh process without tfrec, multi-task outputs."""

import math
import os

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

import export
from export import signatures as sig
from export import warmup
from tfrec import data as data_lib
from tfrec.config import load_config
from tfrec.features import CRITEO, PointwiseSchema
from tfrec.models import ESMM, MMoE
from tfrec.train import build_model

SMALL = ["model.dnn_hidden_units=[8]", "model.num_cross_layers=1", "model.embedding_dim=4"]


def _dcn(tiny_dataset):
    model = build_model(load_config(None, [f"data.dir={tiny_dataset}", *SMALL]))
    model.build_from_config(None)
    # Move the weights off their tiny initial values so the outputs differ between rows.
    rng = np.random.default_rng(1)
    model.set_weights([rng.normal(scale=0.5, size=w.shape).astype(w.dtype) for w in model.get_weights()])
    return model


@pytest.fixture(scope="module")
def dcn_export(tiny_dataset, tmp_path_factory):
    model = _dcn(tiny_dataset)
    base = str(tmp_path_factory.mktemp("exports") / "ctr")
    result = export.export_model(model, base, CRITEO, data_dir=tiny_dataset, model_name="ctr", warmup_rows=8)
    return model, base, result, tf.saved_model.load(result.path)


def _signature_defs(path):
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    return proto.meta_graphs[0].signature_def


def _io(tensor_infos):
    return {k: (tf.dtypes.as_dtype(v.dtype).name, [d.size for d in v.tensor_shape.dim])
            for k, v in tensor_infos.items()}


def test_signatures_names_dtypes_shapes_and_methods(dcn_export):
    _, base, result, _ = dcn_export
    assert result.version == 1 and result.path == os.path.join(base, "1") and result.tasks == ["ctr"]
    defs = _signature_defs(result.path)
    assert set(defs) - {"__saved_model_init_op"} == {"serving_default", "predict_raw", "classification",
                                                      "regression"}
    probs = {"ctr": ("float32", [-1]), "ctr_logit": ("float32", [-1])}
    assert _io(defs["serving_default"].inputs) == {"examples": ("string", [-1])}
    assert _io(defs["serving_default"].outputs) == probs
    assert _io(defs["predict_raw"].inputs) == {**{d: ("float32", [-1]) for d in CRITEO.dense},
                                               **{c: ("string", [-1]) for c in CRITEO.categorical}}
    assert _io(defs["predict_raw"].outputs) == probs
    assert _io(defs["classification"].inputs) == {"inputs": ("string", [-1])}
    assert _io(defs["classification"].outputs) == {"scores": ("float32", [-1, 2]), "classes": ("string", [-1, 2])}
    assert _io(defs["regression"].inputs) == {"inputs": ("string", [-1])}
    assert _io(defs["regression"].outputs) == {"outputs": ("float32", [-1])}
    methods = {k: defs[k].method_name for k in result.signatures}
    assert methods == {"serving_default": "tensorflow/serving/predict", "predict_raw": "tensorflow/serving/predict",
                       "classification": "tensorflow/serving/classify", "regression": "tensorflow/serving/regress"}
    assert result.signatures == methods
    # the fingerprint was recomputed after the method-name edit
    fingerprint = tf.saved_model.experimental.read_fingerprint(result.path)
    assert fingerprint.saved_model_checksum != 0
    assert sorted(os.listdir(base)) == ["1"]  # the staging directory is gone


def _raw_rows():
    hexes = [f"{i:08x}" for i in range(8)]
    full = {"I1": 3, "I2": -1, "I3": 1382, **{d: 7 for d in CRITEO.dense[3:]},
            **{c: hexes[i % 8] for i, c in enumerate(CRITEO.categorical)}}
    sparse = {"I1": 0, "I5": 12, "C1": "00000001", "C2": "deadbeef", "C3": ""}  # the rest missing; C2 is OOV
    empty = {}
    with_label = {**full, "label": 1.0, "weight": 0.5, "I1": 48}
    return [full, sparse, empty, with_label]


def _features(rows):
    """The model's raw inputs of the rows by the documented conventions (missing dense NaN, categorical "")."""
    out = {d: tf.constant([float(r[d]) if d in r else math.nan for r in rows], tf.float32) for d in CRITEO.dense}
    out.update({c: tf.constant([str(r.get(c, "")) for r in rows], tf.string) for c in CRITEO.categorical})
    return out


def test_raw_criteo_rows_give_the_keras_probabilities(dcn_export):
    model, _, _, loaded = dcn_export
    rows = _raw_rows()
    want = model(_features(rows), training=False)
    serialized = tf.constant(export.serialize_rows(rows, CRITEO))
    got = loaded.signatures["serving_default"](examples=serialized)
    np.testing.assert_allclose(got["ctr"].numpy(), want["probability"].numpy(), atol=1e-6)
    np.testing.assert_allclose(got["ctr_logit"].numpy(), want["logit"].numpy(), atol=1e-5)
    assert len(set(np.round(got["ctr"].numpy(), 6))) == len(rows)  # the rows really differ
    raw = loaded.signatures["predict_raw"](**_features(rows))
    np.testing.assert_allclose(raw["ctr"].numpy(), want["probability"].numpy(), atol=1e-6)
    cls = loaded.signatures["classification"](inputs=serialized)
    np.testing.assert_allclose(cls["scores"].numpy()[:, 1], got["ctr"].numpy(), atol=1e-7)
    np.testing.assert_allclose(cls["scores"].numpy().sum(axis=1), 1.0, atol=1e-6)
    assert cls["classes"].numpy().tolist() == [[b"0", b"1"]] * len(rows)
    reg = loaded.signatures["regression"](inputs=serialized)
    np.testing.assert_allclose(reg["outputs"].numpy(), got["ctr"].numpy(), atol=1e-7)


def test_bad_rows_and_requests_fail_clearly(dcn_export):
    _, _, _, loaded = dcn_export
    with pytest.raises(ValueError, match="dense feature `I1` must be a number. Received: I1='abc'"):
        export.example_from_row({"I1": "abc"}, CRITEO)
    wrong_type = tf.train.Example(features=tf.train.Features(feature={
        "I1": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"3"]))})).SerializeToString()
    with pytest.raises(tf.errors.InvalidArgumentError):
        loaded.signatures["serving_default"](examples=tf.constant([wrong_type]))
    got = loaded.signatures["serving_default"](examples=tf.constant([], tf.string))
    assert got["ctr"].shape == (0,)


def test_warmup_records_parse_and_match_the_signatures(dcn_export, tiny_dataset):
    _, _, result, loaded = dcn_export
    records = export.read_records(warmup.warmup_path(result.path))
    assert [r.WhichOneof("log_type") for r in records] == ["predict_log"] * 3 + ["classify_log", "regress_log"]
    assert 0 < len(records) <= 1000
    first_rows = warmup.dataset_examples(tiny_dataset, CRITEO, 8)
    for record in records[:3]:
        request = record.predict_log.request
        assert request.model_spec.name == "ctr"
        fn = loaded.signatures[request.model_spec.signature_name]
        spec = fn.structured_input_signature[1]
        assert set(request.inputs) == set(spec)
        for key, tensor in request.inputs.items():
            assert tf.dtypes.as_dtype(tensor.dtype) == spec[key].dtype, key
        arrays = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        out = fn(**{k: tf.constant(v.tolist() if v.dtype == object else v, spec[k].dtype) for k, v in arrays.items()})
        assert out["ctr"].shape == (len(next(iter(arrays.values()))),)
    served = tf.make_ndarray(records[0].predict_log.request.inputs["examples"]).tolist()
    assert served == first_rows and len(served) == 8
    assert tf.make_ndarray(records[1].predict_log.request.inputs["examples"]).shape == (1,)
    for example in (tf.train.Example.FromString(s) for s in served):
        assert "label" not in example.features.feature and "weight" not in example.features.feature
    assert len(records[3].classify_log.request.input.example_list.examples) == 8
    too_many = [records[0]] * 1001
    with pytest.raises(ValueError, match="at most 1000 warmup records"):
        warmup.write_records(str(result.path) + "-unused", too_many)


@pytest.fixture(scope="module")
def validated(dcn_export):
    model, _, result, _ = dcn_export
    return export.validate(result.path, model, CRITEO)


def test_validate_in_a_fresh_process_without_tfrec(validated):
    report = validated
    assert report.ok, report.format()
    names = [name for name, _, _ in report.checks]
    assert names == ["saved_model_cli signatures", "warmup records", "reload in a fresh process",
                     "stock TensorFlow ops only", "predictions equal the Keras model"]
    assert report.max_abs_diff <= 1e-6
    assert "PASSED" in report.format()


def test_validate_catches_a_different_model(dcn_export, validated, tiny_dataset):
    _, _, result, _ = dcn_export
    other = _dcn(tiny_dataset)
    other.set_weights([w * 1.5 for w in other.get_weights()])
    # the same subprocess results (the export did not change), compared with another model
    report = export.validate(result.path, other, CRITEO, fresh=validated.fresh)
    assert not report.ok
    failed = [name for name, passed, _ in report.checks if not passed]
    assert failed == ["predictions equal the Keras model"], report.format()


def test_schema_mismatch_is_an_error(dcn_export):
    model = dcn_export[0]
    with pytest.raises(ValueError, match="lacks the model inputs"):
        sig.SignatureSet(model, PointwiseSchema(name="short", dense=("I1",), categorical=("C1",)))


# ---------------------------------------------------------------------------------------------- multi-task

DENSE, CATEGORICAL = ["d0", "d1"], ["c0", "c1"]
VOCAB = {"c0": ["a", "b", "c"], "c1": ["x", "y"]}
FEATS = dict(dense=DENSE, categorical=CATEGORICAL, vocabularies=VOCAB,
             transform={"kind": "log_minmax", "scale": {"d0": 3.0, "d1": 3.0}}, embedding_dim=4, tower_units=[4])


@pytest.mark.parametrize("make, tasks", [
    (lambda: MMoE(**FEATS, num_experts=2, expert_units=[4]), ["ctr", "cvr"]),
    (lambda: ESMM(**FEATS), ["ctr", "cvr", "ctcvr"]),
], ids=["mmoe", "esmm"])
def test_multitask_models_export_one_output_per_task(tmp_path, make, tasks):
    model = make()
    model.build_from_config(None)
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(scale=0.5, size=w.shape).astype(w.dtype) for w in model.get_weights()])
    rows = [{"d0": 2, "d1": -5, "c0": "a", "c1": "y"}, {"d0": 40, "c0": "zzz"}, {}]
    result = export.export_model(model, str(tmp_path / "mt"), rows=rows)
    assert result.tasks == tasks and result.version == 1
    loaded = tf.saved_model.load(result.path)
    schema = sig.schema_of(model)
    got = loaded.signatures["serving_default"](examples=tf.constant(export.serialize_rows(rows, schema)))
    assert set(got) == {k for t in tasks for k in (t, f"{t}_logit")}
    features = {"d0": tf.constant([2.0, 40.0, math.nan]), "d1": tf.constant([-5.0, math.nan, math.nan]),
                "c0": tf.constant(["a", "zzz", ""]), "c1": tf.constant(["y", "", ""])}
    want = model(features, training=False)
    for t in tasks:
        np.testing.assert_allclose(got[t].numpy(), want[t].numpy(), atol=1e-6)
        np.testing.assert_allclose(got[f"{t}_logit"].numpy(), want[f"{t}_logit"].numpy(), atol=1e-5)
    reg = loaded.signatures["regression"](inputs=tf.constant(export.serialize_rows(rows, schema)))
    np.testing.assert_allclose(reg["outputs"].numpy(), got["ctr"].numpy(), atol=1e-7)
    defs = _signature_defs(result.path)
    assert _io(defs["serving_default"].outputs) == {k: ("float32", [-1]) for t in tasks for k in (t, f"{t}_logit")}


def test_extra_signatures_extension_point(tmp_path):
    """A model adds its own signatures (as the pre-ranking model adds user / item embeddings) through
    ``extra_serving_signatures``; a stock name is refused."""

    class WithEmbedding(MMoE):
        clash = False

        def extra_serving_signatures(self):
            spec = {k: tf.TensorSpec([None], s.dtype, name=k) for k, s in self.input_signature().items()}

            @tf.function(input_signature=[spec], autograph=False)
            def input_embedding(features):
                return {"embedding": self.flat_embedding(features)}

            return {("regression" if self.clash else "input_embedding"): (input_embedding, sig.PREDICT_METHOD)}

    model = WithEmbedding(**FEATS, num_experts=2, expert_units=[4])
    model.build_from_config(None)
    result = export.export_model(model, str(tmp_path / "m"))
    assert result.signatures["input_embedding"] == "tensorflow/serving/predict" and len(result.signatures) == 5
    defs = _signature_defs(result.path)
    assert _io(defs["input_embedding"].outputs) == {"embedding": ("float32", [-1, 16])}
    model.clash = True
    with pytest.raises(ValueError, match="extra signature 'regression' clashes with a stock signature"):
        export.export_model(model, str(tmp_path / "m"))
    assert export.list_versions(str(tmp_path / "m")) == [1]
