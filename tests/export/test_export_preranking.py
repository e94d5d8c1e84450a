"""Pre-ranking export end to end: a tiny ThreeTower trained a few steps, `tfrec export --validate --items` (fresh
process, stock ops, warmup records of every signature, 1e-6), the three pre-ranking signatures equal the Keras
model on the dataset's lists, the item-embedding file equals the item_embedding signature, and the local gRPC
server's Predict gives the Keras numbers and refuses a malformed list without going down."""

import contextlib
import io
import json
import os

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import input_pb2

import export
from export import preranking
from export import warmup
from tests.support.hccp_files import item_table, write_listwise_dataset
from serving.client import PredictionClient, PredictionError
from serving.manager import ModelSource
from serving.server import ModelServer
from tests.export.test_export import _io, _signature_defs as _defs
from tfrec.cli import main
from tfrec.config import load_config
from tfrec.features import HCCP
from tfrec.train_preranking import load_trained_preranking, train_preranking

SMALL = ["model.name=three_tower", "model.hash_bins=64", "model.embedding_dim=4", "model.num_experts=2",
         "model.expert_units=[8]", "model.item_units=[8]", "model.cross_units=[4]",
         "model.output_dim=4", "preranking.train_list_size=12", "preranking.eval_list_size=16",
         "data.batch_size=8", "data.eval_batch_size=8"]
TASKS = HCCP.tasks


def _lists(data, split="test"):
    path = os.path.join(data, f"{split}-00000-of-00001.tfrecord.gz")
    return [r.numpy() for r in tf.data.TFRecordDataset(path, compression_type="GZIP")]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("hccp_export")
    data = write_listwise_dataset(str(root / "data"))
    overrides = [f"data.dir={data}", f"train.model_dir={root / 'run'}", "train.epochs=1", "train.steps_per_epoch=2",
                 "train.replicas=1", *SMALL]
    cfg = load_config(None, overrides)
    train_preranking(cfg, printer=lambda s: None)
    base = str(root / "models" / "hccp")
    argv = ["export", "--data", data, "--model-dir", str(root / "run"), "--base-path", base, "--model-name",
            "hccp", "--warmup-rows", "4", "--items", os.path.join(data, "items.jsonl"), "--validate",
            *[a for s in SMALL for a in ("--set", s)]]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(argv)
    return data, base, (code, printed.getvalue()), load_trained_preranking(cfg)


def _keras_scores(model, lists):
    """The Keras model on the training reader's parse of the lists (an independent path to the same numbers)."""
    parsed = HCCP.parse(tf.constant(lists), mask_feature_name="example_mask")
    feats = {k: (tf.sparse.to_dense(v, default_value="") if isinstance(v, tf.SparseTensor) else v)
             for k, v in parsed.items()}
    return model(feats, training=False), feats["example_mask"].numpy()


def test_cli_export_validates_every_signature(exported):
    data, base, (code, out), _ = exported
    assert code == 0, out
    assert "validation of" in out and "PASSED" in out and "FAIL " not in out
    assert export.list_versions(base) == [1]
    path = os.path.join(base, "1")
    defs = _defs(path)
    assert set(defs) >= {"serving_default", "predict_raw", "classification", "regression", "user_embedding",
                         "item_embedding", "score_candidates"}
    assert _io(defs["user_embedding"].inputs) == {"examples": ("string", [-1])}
    assert _io(defs["user_embedding"].outputs) == {t: ("float32", [-1, 4]) for t in TASKS}
    assert _io(defs["item_embedding"].outputs) == {"embedding": ("float32", [-1, 4])}
    assert _io(defs["score_candidates"].inputs) == {"lists": ("string", [-1])}
    want = {"example_mask": ("int32", [-1, -1]),
            **{k: ("float32", [-1, -1]) for t in TASKS for k in (t, f"{t}_logit")}}
    assert _io(defs["score_candidates"].outputs) == want
    records = warmup.read_records(warmup.warmup_path(path))
    names = {getattr(r, r.WhichOneof("log_type")).request.model_spec.signature_name for r in records}
    assert names == {"serving_default", "predict_raw", "classification", "regression", "user_embedding",
                     "item_embedding", "score_candidates"}
    for r in records:  # requests carry only the model's features (no labels or orders of the dataset)
        if r.predict_log.request.model_spec.signature_name == "score_candidates":
            lists = tf.make_ndarray(r.predict_log.request.inputs["lists"])
            elwc = input_pb2.ExampleListWithContext.FromString(lists[0])
            assert set(elwc.examples[0].features.feature) == {"item_id", "category", "price"}


def test_signatures_equal_the_keras_model(exported):
    data, base, _, model = exported
    loaded = tf.saved_model.load(os.path.join(base, "1"))
    lists = _lists(data)[:3]
    got = {k: v.numpy() for k, v in loaded.signatures["score_candidates"](lists=tf.constant(lists)).items()}
    want, mask = _keras_scores(model, lists)
    assert mask.shape[1] == max(len(input_pb2.ExampleListWithContext.FromString(s).examples) for s in lists)
    np.testing.assert_array_equal(got["example_mask"], mask.astype(np.int32))
    for t in TASKS:
        np.testing.assert_allclose(got[t], np.where(mask, want[t].numpy(), 0.0), atol=1e-6)
        np.testing.assert_allclose(got[f"{t}_logit"], np.where(mask, want[f"logit_{t}"].numpy(), 0.0),
                                   rtol=1e-6, atol=1e-6)
    assert np.ptp(got["click"][mask]) > 0  # the candidates really differ
    parsed = [input_pb2.ExampleListWithContext.FromString(s) for s in lists]
    contexts = [p.context.SerializeToString() for p in parsed]
    users = loaded.signatures["user_embedding"](examples=tf.constant(contexts))
    for t in TASKS:
        np.testing.assert_allclose(users[t].numpy(), want[f"user_{t}"].numpy(), atol=1e-6)
    items = [e.SerializeToString() for e in parsed[0].examples]
    emb = loaded.signatures["item_embedding"](examples=tf.constant(items))["embedding"].numpy()
    np.testing.assert_allclose(emb, want["item_embedding"].numpy()[0, :len(items)], atol=1e-6)
    # A point-wise row (context + one candidate) scores as the candidate does in its list.
    rows = preranking.rows_of(lists[:1], 100)
    point = loaded.signatures["serving_default"](examples=tf.constant(rows))
    np.testing.assert_allclose(point["click"].numpy(), got["click"][0, :len(rows)], atol=1e-6)
    reg = loaded.signatures["regression"](inputs=tf.constant(rows))["outputs"].numpy()
    np.testing.assert_allclose(reg, point["click"].numpy(), atol=1e-7)


def test_item_embedding_file_equals_the_signature(exported, tmp_path, capsys):
    data, base, _, model = exported
    path = os.path.join(base, "1")
    extra = os.path.join(path, "assets.extra")
    with open(os.path.join(extra, preranking.ITEM_EMBEDDINGS_INFO)) as f:
        info = json.load(f)
    assert info["count"] == len(item_table()) and info["dim"] == 4
    ids, vectors = preranking.read_item_embeddings(os.path.join(extra, preranking.ITEM_EMBEDDINGS_FILE))
    assert [i.decode() for i in ids] == [it["item_id"] for it in item_table()]
    items = preranking.read_item_table(os.path.join(data, "items.jsonl"))
    loaded = tf.saved_model.load(path)
    np.testing.assert_allclose(vectors, loaded.signatures["item_embedding"](examples=tf.constant(items))
                               ["embedding"].numpy(), atol=1e-6)
    feats = tf.io.parse_example(tf.constant(items), preranking.ps.item_spec())
    np.testing.assert_allclose(vectors, model.item_embedding(feats).numpy(), atol=1e-6)
    # `tfrec item-embeddings` recomputes the same file from the export alone.
    capsys.readouterr()
    assert main(["item-embeddings", "--export-dir", path, "--items", os.path.join(data, "items.jsonl"),
                 "--out", str(tmp_path / "emb"), "--batch-size", "7"]) == 0
    assert "30 item embeddings of dim 4" in capsys.readouterr().out
    ids2, vectors2 = preranking.read_item_embeddings(str(tmp_path / "emb" / preranking.ITEM_EMBEDDINGS_FILE))
    np.testing.assert_array_equal(ids2, ids)
    np.testing.assert_allclose(vectors2, vectors, atol=1e-6)


def test_local_grpc_server_predicts_the_keras_numbers(exported):
    data, base, _, model = exported
    lists = _lists(data, "valid")[:2]
    want, mask = _keras_scores(model, lists)
    contexts = [input_pb2.ExampleListWithContext.FromString(s).context.SerializeToString() for s in lists]
    server = ModelServer([ModelSource("hccp", base)], port=0, poll_seconds=0.5).start()
    try:
        with PredictionClient(server.address, timeout=30) as client:
            got = client.predict("hccp", {"lists": lists}, signature="score_candidates")
            for t in TASKS:
                np.testing.assert_allclose(got[t], np.where(mask, want[t].numpy(), 0.0), atol=1e-6)
            users = client.predict("hccp", {"examples": contexts}, signature="user_embedding")
            np.testing.assert_allclose(users["click"], want["user_click"].numpy(), atol=1e-6)
            with pytest.raises(PredictionError) as err:
                client.predict("hccp", {"lists": [b"\xff\x01 not a proto"]}, signature="score_candidates")
            # DecodeProtoV2's own status, as TF Serving passes it on (DATA_LOSS for bytes that are not a proto).
            assert err.value.code in (grpc.StatusCode.DATA_LOSS, grpc.StatusCode.INVALID_ARGUMENT)
            with pytest.raises(PredictionError) as err:
                client.predict("hccp", {"lists": [[b"a"]]}, signature="score_candidates")  # rank 2
            assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
            again = client.predict("hccp", {"lists": lists[:1]}, signature="score_candidates")
            np.testing.assert_allclose(again["click"][0], got["click"][0, :again["click"].shape[1]], atol=1e-6)
    finally:
        server.stop()


def test_item_table_errors_name_the_line(tmp_path):
    path = tmp_path / "items.jsonl"
    path.write_text('{"item_id": "a", "category": "c", "price": 1}\n{"item_id": "b", "category": "c"}\n')
    with pytest.raises(ValueError, match=r"items.jsonl:2: `price` must be a finite number"):
        preranking.read_item_table(str(path))
    path.write_text('{"item_id": "a", "category": "c", "price": 1}\n{"item_id": "a", "category": "d", "price": 2}\n')
    with pytest.raises(ValueError, match=r"items.jsonl:2: duplicate item_id 'a'"):
        preranking.read_item_table(str(path))
    with pytest.raises(FileNotFoundError):
        preranking.read_item_table(str(tmp_path / "missing.jsonl"))


def test_cli_items_only_for_preranking_data(tiny_dataset, tmp_path, capsys):
    argv = ["export", "--data", tiny_dataset, "--model-dir", str(tmp_path), "--base-path", str(tmp_path / "m"),
            "--items", str(tmp_path / "items.jsonl")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("tfrec export: error: --items is for pre-ranking") and err.count("\n") == 1
    assert not os.path.exists(tmp_path / "m")
