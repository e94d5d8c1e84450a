"""The hybrid (HCCP pre-ranking) family in the pipeline runner: a tiny simulated cascade -> ExampleGen
(pipelines/hybrid_samples) -> list-wise StatisticsGen / SchemaGen / ExampleValidator -> Trainer (Three-Tower) ->
Evaluator (score_candidates, click AUC over impressions) -> Pusher, the pushed version served by the local
PredictionService; and the validator stopping a run whose click rate drifted and whose user_segment went missing."""

from __future__ import annotations

import glob
import json
import os
import shutil
import sqlite3

import numpy as np
import pytest
import tensorflow as tf
import yaml
from sklearn.metrics import log_loss, roc_auc_score

from export.preranking import ITEM_EMBEDDINGS_FILE, read_item_embeddings, read_item_table
from export.versions import list_versions
from pipelines.tfx import PipelineError, load_pipeline_config, run_pipeline
from pipelines.tfx.components import ComponentError, ORDER, evaluator, read_json, trainer
from tfrec.config import CascadeConfig
from tfrec.features import HCCP, SAMPLE_N1
from tfrec.simulation.cascade import simulate_cascade
from tests.support import ROOT

CONFIG = os.path.join(ROOT, "configs", "pipeline_hccp.yaml")
SIM = dict(requests=160, users=30, items=300, categories=6, retrieved=60, ranked=20, exposed_min=4, exposed_max=6,
           days=2, seed=5)
SETTINGS = {
    "pipeline": {"name": "hccp_test", "train_steps": 3, "eval_steps": 1},
    "evaluator": {"min_auc": 0.0},
    "hybrid": {"chunk_boundaries": [5, 10], "chunk_rates": [0.5, 0.3, 0.2], "preranking_samples": 5,
               "pool_samples": 3, "num_shards": 1},
    "model": {"hash_bins": 256, "embedding_dim": 4, "num_experts": 2, "expert_units": [8], "item_units": [8],
              "cross_units": [4], "output_dim": 4},
    "preranking": {"train_list_size": 24, "eval_list_size": 72},
    "data": {"batch_size": 16, "eval_batch_size": 32, "shuffle_buffer": 200},
    "train": {"epochs": 1, "learning_rate": 0.01, "log_every_seconds": 0, "save_every_steps": 2},
}


def _write_config(path, root, serving, logs):
    with open(CONFIG) as f:
        cfg = yaml.safe_load(f)
    for section, values in SETTINGS.items():
        cfg.setdefault(section, {}).update(values)
    cfg["pipeline"].update(root=root, serving_base_path=serving)
    cfg["hybrid"].update(inputs=[os.path.join(logs, "requests.jsonl")], items=[os.path.join(logs, "items.jsonl")])
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f)
    return path


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """One complete run: work directory, config, logs, result, serving base path."""
    work = str(tmp_path_factory.mktemp("pipeline_hccp"))
    logs = os.path.join(work, "logs")
    simulate_cascade(CascadeConfig(output=logs, **SIM))
    serving = os.path.join(work, "serving", "hccp")
    path = _write_config(os.path.join(work, "pipeline.yaml"), os.path.join(work, "root"), serving, logs)
    lines = []
    result = run_pipeline(load_pipeline_config(path), printer=lines.append)
    return {"work": work, "config": path, "logs": logs, "result": result, "serving": serving, "lines": lines}


def _split(root, result, split):
    data = result.outputs["example_gen"]["examples"].path(root)
    files = sorted(glob.glob(os.path.join(data, f"{split}-*.tfrecord.gz")))
    return [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]


def test_end_to_end_run_pushes_a_version_whose_score_candidates_the_prediction_service_answers(base):
    from serving.client import PredictionClient
    from serving.manager import ModelSource
    from serving.server import ModelServer

    result, root = base["result"], base["result"].root
    assert result.executed == list(ORDER) and result.cached == []
    examples = result.outputs["example_gen"]["examples"]
    assert examples.properties["family"] == "preranking" and examples.properties["rows_rejected"] == 0
    assert sum(examples.properties["rows_written"].values()) == SIM["requests"]
    # A record of the hybrid family is one request's list: ExampleGen's line counts requests.
    written = [line.strip() for line in base["lines"] if " written " in line]
    assert written == [f"requests written {examples.properties['rows_written']}; requests rejected 0"], base["lines"]

    # StatisticsGen counts the labels on impressions from the records; the Beam pipeline counted them itself.
    stats = read_json(os.path.join(result.outputs["statistics_gen"]["statistics"].path(root), "statistics.json"))
    beam_stats = read_json(os.path.join(examples.path(root), "stats.json"))
    for split in ("train", "valid", "test"):
        s = stats[split]
        assert s["rows"] == beam_stats["requests_written"][split]
        assert s["sample_types"] == beam_stats["items_per_sample_type"][split]
        assert s["impressions"] == s["sample_types"]["N1"] > 0
        for label in ("click", "purchase"):
            np.testing.assert_allclose(s["labels"][label]["positive_rate"],
                                       beam_stats["label_rate_on_impressions"][split][label], rtol=1e-12)
        assert s["positive_rate"] == s["labels"]["click"]["positive_rate"]
        assert s["features"]["user_segment"]["level"] == "context" and s["features"]["price"]["level"] == "item"
        assert s["features"]["price"]["presence"] == 1.0 and "sample_type" not in s["features"]
        assert "click" not in s["features"] and "percentiles" not in s["features"]["day"]
    schema = read_json(os.path.join(result.outputs["schema_gen"]["schema"].path(root), "schema.json"))
    assert schema["label_rates"]["click"] == stats["train"]["labels"]["click"]["positive_rate"]
    assert "min" not in schema["features"]["day"] and "min" in schema["features"]["price"]
    assert result.outputs["example_validator"]["anomalies"].properties["count"] == 0

    # The Trainer got the model section (and the preranking section's list sizes); the export has the pre-ranking
    # signatures.
    db = sqlite3.connect(os.path.join(root, "metadata.sqlite"))
    (params,) = db.execute("SELECT parameters FROM executions WHERE run_id = ? AND component = 'trainer'",
                           (result.run_id,)).fetchone()
    custom = json.loads(params)["custom_config"]
    assert custom["model"]["output_dim"] == 4 and custom["preranking"]["train_list_size"] == 24
    pushed = result.outputs["pusher"]["pushed_model"].properties
    assert pushed["pushed"] and list_versions(base["serving"]) == [pushed["version"]]
    local = tf.saved_model.load(os.path.join(base["serving"], str(pushed["version"])))
    assert {"user_embedding", "item_embedding", "score_candidates", "serving_default"} <= set(local.signatures)

    # The pushed version holds the precomputed item embeddings of the item table, as `tfrec export --items` writes
    # them: one per valid item of the table (from the dataset's items.jsonl), equal to what item_embedding answers.
    ids, vectors = read_item_embeddings(os.path.join(base["serving"], str(pushed["version"]), "assets.extra",
                                                     ITEM_EMBEDDINGS_FILE))
    with open(os.path.join(base["logs"], "items.jsonl"), encoding="utf-8") as f:
        table = sorted(json.loads(line)["item_id"] for line in f)
    assert [i.decode() for i in ids] == table and vectors.shape == (SIM["items"], 4)
    items = read_item_table(os.path.join(examples.path(root), "items.jsonl"))
    want = local.signatures["item_embedding"](examples=tf.constant(items))["embedding"].numpy()
    np.testing.assert_array_equal(vectors, want)

    # The Evaluator's AUC / logloss: the click probability of score_candidates over the test impressions.
    lists = _split(root, result, "test")
    scores = local.signatures["score_candidates"](lists=tf.constant(lists))
    parsed = HCCP.parse(tf.constant(lists), mask_feature_name="mask")
    keep = parsed["mask"].numpy() & (parsed["sample_type"].numpy() == SAMPLE_N1)
    y, p = parsed["click"].numpy()[keep], scores["click"].numpy()[keep]
    metrics = result.outputs["evaluator"]["blessing"].properties["metrics"]
    assert metrics["rows"] == keep.sum() == stats["test"]["impressions"]
    np.testing.assert_allclose(metrics["auc"], roc_auc_score(y, p), rtol=1e-6)
    np.testing.assert_allclose(metrics["logloss"], log_loss(y, p.astype(np.float64)), rtol=1e-5)

    with ModelServer([ModelSource("hccp", base["serving"])], port=0, poll_seconds=0.2) as server:
        with PredictionClient(server.address, timeout=30.0) as client:
            got = client.predict("hccp", {"lists": lists[:4]}, signature="score_candidates")
    want = local.signatures["score_candidates"](lists=tf.constant(lists[:4]))
    for task in HCCP.tasks:
        np.testing.assert_allclose(got[task], want[task].numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(got["example_mask"], want["example_mask"].numpy())


def test_drifted_click_rate_and_a_missing_feature_stop_the_run_at_validation(base, tmp_path):
    logs = str(tmp_path / "logs")
    os.makedirs(logs)
    shutil.copy(os.path.join(base["logs"], "items.jsonl"), logs)
    with open(os.path.join(base["logs"], "requests.jsonl")) as f, \
            open(os.path.join(logs, "requests.jsonl"), "w") as out:
        for line in f:  # every impression clicked; the user segment empty (the reader's missing value)
            r = json.loads(line)
            r["clicks"] = list(r["exposed"])
            r["user"]["user_segment"] = ""
            out.write(json.dumps(r) + "\n")
    root, serving = str(tmp_path / "root"), str(tmp_path / "serving" / "hccp")
    shutil.copytree(os.path.join(base["work"], "root"), root)
    shutil.copytree(base["serving"], serving)
    with pytest.raises(PipelineError) as info:
        run_pipeline(load_pipeline_config(_write_config(str(tmp_path / "pipeline.yaml"), root, serving, logs)))
    message = str(info.value)
    assert message.startswith("example_validator failed"), message
    assert "[positive_rate_drift] train click rate 1.0000" in message
    assert "[missing_feature] feature user_segment is present in 0.0% of train lists" in message
    db = sqlite3.connect(os.path.join(root, "metadata.sqlite"))
    run_id, status = db.execute("SELECT run_id, status FROM runs ORDER BY start_time DESC LIMIT 1").fetchone()
    ran = [c for c, in db.execute("SELECT component FROM executions WHERE run_id = ?", (run_id,))]
    assert status == "FAILED" and ran == ["example_gen", "statistics_gen", "schema_gen", "example_validator"]
    assert list_versions(serving) == list_versions(base["serving"])


def test_hybrid_family_parameters(tmp_path):
    sets = [f"pipeline.root={tmp_path}"]
    cfg = load_pipeline_config(CONFIG, sets)
    params = evaluator.parameters(cfg)
    assert (params["task"], params["label"], params["signature"]) == ("click", "click", "score_candidates")
    with pytest.raises(ComponentError, match="evaluator.task 'ctr' has no default label in the 'preranking' family"):
        evaluator.parameters(load_pipeline_config(CONFIG, sets + ["evaluator.task=ctr"]))
    assert "preranking" in trainer.parameters(cfg)["custom_config"]
    criteo = load_pipeline_config(os.path.join(os.path.dirname(CONFIG), "pipeline_criteo.yaml"), sets)
    assert "signature" not in evaluator.parameters(criteo)
    assert "preranking" not in trainer.parameters(criteo)["custom_config"]
    # The TFX Evaluator checks the parameters against the examples' family (their schema.json's).
    from tfrec.families import get

    evaluator.check_family(params, get("preranking"))
    evaluator.check_family(evaluator.parameters(criteo), get("pointwise"))
    with pytest.raises(ComponentError, match="score through score_candidates, but the examples are the 'pointwise' "
                                             "family's, scored through serving_default"):
        evaluator.check_family(params, get("pointwise"))
    with pytest.raises(ComponentError, match="score through serving_default, but the examples are the 'preranking' "
                                             "family's, scored through score_candidates"):
        evaluator.check_family(evaluator.parameters(criteo), get("preranking"))
