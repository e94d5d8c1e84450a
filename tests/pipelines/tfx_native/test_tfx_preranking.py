"""The pre-ranking (list-wise, HCCP Three-Tower) family in a pipeline written as a TFX user writes it: simulated
cascade logs -> `tfrec prepare-hybrid` (one ExampleListWithContext per request) -> stock ImportExampleGen (records
kept as serialized protos) -> tfrec's ListwiseStatisticsGen / ListwiseExampleValidator (TFDV does not read lists;
the side files from the prepared directory) -> stock Trainer (module_file = tfrec/trainer_module.py, Three-Tower)
-> stock Pusher, under LocalDagRunner. The pushed version holds the item table's precomputed embeddings, and its
score_candidates, served by tfrec's PredictionService, answers as the trained SavedModel does in process."""

from __future__ import annotations

import json
import os

import pytest

pytest.importorskip("tfx", reason="TFX is not installed (the tfx extra: pip install --ignore-requires-python "
                                  "-c constraints-tfx.txt -e '.[tfx]'); in a TFX virtualenv: "
                                  "pytest tests/pipelines/tfx_native")

from tests.pipelines.tfx_native.tfx_helpers import (ROOT, assert_served_equals_in_process, executions,  # noqa: E402
                                                    newest, split_records, stock_pipeline)

from export.preranking import ITEM_EMBEDDINGS_FILE, read_item_embeddings  # noqa: E402
from export.versions import list_versions  # noqa: E402
from tfrec.config import CascadeConfig  # noqa: E402
from tfrec.features import HCCP  # noqa: E402
from tfrec.simulation.cascade import simulate_cascade  # noqa: E402

SIM = dict(requests=160, users=30, items=300, categories=6, retrieved=60, ranked=20, exposed_min=4, exposed_max=6,
           days=2, seed=5)
#: `tfrec prepare-hybrid` settings that keep the lists short.
HYBRID = ["hybrid.chunk_boundaries=[5, 10]", "hybrid.chunk_rates=[0.5, 0.3, 0.2]", "hybrid.preranking_samples=5",
          "hybrid.pool_samples=3", "hybrid.num_shards=1", "hybrid.full_eval_lists=true"]
#: tfrec's config sections for the module: a tiny HCCP Three-Tower model, one epoch.
CUSTOM_CONFIG = {
    "model": {"name": "three_tower", "variant": "hccp", "tasks": ["click", "purchase", "diversity"],
              "hash_bins": 256, "embedding_dim": 4, "num_experts": 2, "expert_units": [8], "item_units": [8],
              "cross_units": [4], "output_dim": 4},
    "preranking": {"train_list_size": 24, "eval_list_size": 72},
    "data": {"batch_size": 16, "eval_batch_size": 32, "shuffle_buffer": 200},
    "train": {"epochs": 1, "learning_rate": 0.01, "replicas": 1, "log_every_seconds": 0},
}
NODES = ("ImportExampleGen", "ListwiseStatisticsGen", "ListwiseExampleValidator", "Trainer", "Pusher")


def test_stock_tfx_pipeline_trains_the_preranking_family_and_pushes_a_model_that_serves(tmp_path):
    import tensorflow as tf
    from tfx import v1 as tfx

    from pipelines.tfx import load_pipeline_config
    from pipelines.tfx.components import example_validator, read_json, statistics_gen
    from tfrec.cli import main

    logs, prepared = str(tmp_path / "logs"), str(tmp_path / "hccp")
    simulate_cascade(CascadeConfig(output=logs, **SIM))
    assert main(["prepare-hybrid", "--input", os.path.join(logs, "requests.jsonl"), "--items",
                 os.path.join(logs, "items.jsonl"), "--out", prepared,
                 *[a for s in HYBRID for a in ("--set", s)]]) == 0
    root, serving = str(tmp_path / "tfx"), str(tmp_path / "serving")
    # The list-wise components' parameters, as tfrec's own pipeline derives them from configs/pipeline_hccp.yaml.
    cfg = load_pipeline_config(os.path.join(ROOT, "configs", "pipeline_hccp.yaml"), [f"pipeline.root={root}"])
    listwise = (statistics_gen.parameters(cfg), example_validator.parameters(cfg))

    tfx.orchestration.LocalDagRunner().run(
        stock_pipeline("tfrec_preranking", root, prepared, serving, CUSTOM_CONFIG, train_steps=6, listwise=listwise))

    states = executions(root)
    assert {n: s[-1] for n, s in states.items()} == {n: "COMPLETE" for n in NODES}, states
    # The list-wise statistics of the stock ExampleGen's records count what `tfrec prepare-hybrid` wrote.
    stats = read_json(os.path.join(newest(root, "ListwiseStatisticsGen", "statistics"), "statistics.json"))
    written = read_json(os.path.join(prepared, "stats.json"))["requests_written"]
    assert {s: stats[s]["rows"] for s in ("train", "valid", "test")} == written
    assert sum(written.values()) == SIM["requests"] and stats["train"]["labels"]["click"]["positive_rate"] > 0

    model = os.path.join(newest(root, "Trainer", "model"), "Format-Serving")
    (version,) = list_versions(serving)
    pushed = os.path.join(serving, str(version))
    assert {"user_embedding", "item_embedding", "score_candidates", "serving_default"} <= set(
        tf.saved_model.load(pushed).signatures)
    # The item table's embeddings, precomputed from the prepared directory's items.jsonl (custom_config's
    # dataset_dir), one per item.
    ids, vectors = read_item_embeddings(os.path.join(pushed, "assets.extra", ITEM_EMBEDDINGS_FILE))
    with open(os.path.join(logs, "items.jsonl"), encoding="utf-8") as f:
        table = sorted(json.loads(line)["item_id"] for line in f)
    assert [i.decode() for i in ids] == table and vectors.shape == (SIM["items"], 4)

    lists = split_records(newest(root, "ImportExampleGen", "examples"), "test", 4)
    got = assert_served_equals_in_process(serving, version, model, {"lists": lists}, "score_candidates",
                                          (*HCCP.tasks, "example_mask"))
    assert got["click"].shape[0] == 4
