"""The pre-ranking (list-wise, HCCP Three-Tower) family in a pipeline written as a TFX user writes it: simulated
cascade logs -> `tfrec prepare-hybrid` (one ExampleListWithContext per request) -> stock ImportExampleGen (records
kept as serialized protos) -> tfrec's ListwiseStatisticsGen / ListwiseExampleValidator (TFDV does not read lists;
the side files from the prepared directory) -> stock Trainer (module_file = tfrec/trainer_module.py, Three-Tower)
-> tfrec's TfrecEvaluator (TFMA cannot score lists: tfrec's exact click AUC over the test lists' impressions,
through score_candidates, against the thresholds and the newest pushed version) -> stock Pusher, under
LocalDagRunner. The pushed version holds the item table's precomputed embeddings, and its score_candidates, served
by tfrec's PredictionService, answers as the trained SavedModel does in process. A rerun with nothing changed is
fully cached (nothing pushed); a worse model (a constant score) is NOT_BLESSED and nothing is pushed; logs whose
impressions' click rate drifted stop at the list-wise validator with the drift named, and nothing is trained or
pushed."""

from __future__ import annotations

import json
import os
import re

import pytest

pytest.importorskip("tfx", reason="TFX is not installed (the tfx extra: pip install --ignore-requires-python "
                                  "-c constraints-tfx.txt -e '.[tfx]'); in a TFX virtualenv: "
                                  "pytest tests/pipelines/tfx_native")

from tests.pipelines.tfx_native.tfx_helpers import (MODULE_FILE, ROOT, assert_served_equals_in_process,  # noqa: E402
                                                    executions, newest, split_records, stock_pipeline)

from export.preranking import ITEM_EMBEDDINGS_FILE, read_item_embeddings  # noqa: E402
from export.versions import list_versions  # noqa: E402
from pipelines.tfx.components import ComponentError  # noqa: E402
from tfrec.config import CascadeConfig  # noqa: E402
from tfrec.features import HCCP  # noqa: E402
from tfrec.simulation.cascade import simulate_cascade  # noqa: E402

#: Few items, enough requests: each item is shown often enough that 24 steps learn its quality (test click AUC
#: 0.83 over 172 impressions, 11 clicked), so the trained model clears configs/pipeline_hccp.yaml's evaluator.min_auc
#: 0.6 and a constant one (AUC 0.5) does not.
SIM = dict(requests=400, users=30, items=80, categories=6, retrieved=40, ranked=20, exposed_min=4, exposed_max=6,
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
    "train": {"epochs": 1, "learning_rate": 0.03, "replicas": 1, "log_every_seconds": 0},
}
NODES = ("ImportExampleGen", "ListwiseStatisticsGen", "ListwiseExampleValidator", "Trainer", "TfrecEvaluator",
         "Pusher")
HERE = os.path.dirname(os.path.abspath(__file__))


def _pipeline(root, prepared, serving, checks, module_file=MODULE_FILE):
    # No Resolver (latest blessed model) before the Evaluator: TfrecEvaluator compares with the newest version the
    # Pusher pushed (the last blessed model), so its inputs and an identical rerun stay cached.
    listwise, blessing = checks
    return stock_pipeline("tfrec_preranking", root, prepared, serving, CUSTOM_CONFIG, train_steps=24,
                          module_file=module_file, listwise=listwise, tfrec_evaluator=blessing)


def _prepare(logs, prepared):
    from tfrec.cli import main

    assert main(["prepare-hybrid", "--input", os.path.join(logs, "requests.jsonl"), "--items",
                 os.path.join(logs, "items.jsonl"), "--out", prepared,
                 *[a for s in HYBRID for a in ("--set", s)]]) == 0
    return prepared


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    """The first run of the pipeline over simulated cascade logs."""
    from tfx import v1 as tfx

    from pipelines.tfx import load_pipeline_config
    from pipelines.tfx.components import evaluator, example_validator, statistics_gen

    work = tmp_path_factory.mktemp("tfx_preranking")
    logs = str(work / "logs")
    simulate_cascade(CascadeConfig(output=logs, **SIM))
    prepared = _prepare(logs, str(work / "hccp"))
    root, serving = str(work / "tfx"), str(work / "serving")
    # The list-wise components' parameters, as tfrec's own pipeline derives them from configs/pipeline_hccp.yaml.
    cfg = load_pipeline_config(os.path.join(ROOT, "configs", "pipeline_hccp.yaml"), [f"pipeline.root={root}"])
    checks = ((statistics_gen.parameters(cfg), example_validator.parameters(cfg)), evaluator.parameters(cfg))
    tfx.orchestration.LocalDagRunner().run(_pipeline(root, prepared, serving, checks))
    return {"work": work, "logs": logs, "prepared": prepared, "root": root, "serving": serving,
            "listwise": checks[0], "checks": checks}


def test_stock_tfx_pipeline_trains_the_preranking_family_and_pushes_a_model_that_serves(first):
    import tensorflow as tf

    from pipelines.tfx.components import read_json

    logs, prepared, root, serving = first["logs"], first["prepared"], first["root"], first["serving"]
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

    # TfrecEvaluator blessed it on tfrec's exact click AUC over the test lists' impressions, the AUC recomputed
    # here over every (clicked, not clicked) pair of the trained model's scores.
    blessing = newest(root, "TfrecEvaluator", "blessing")
    assert "BLESSED" in os.listdir(blessing) and "NOT_BLESSED" not in os.listdir(blessing)
    report = read_json(os.path.join(blessing, "evaluation.json"))
    labels, scores = _impressions(split_records(newest(root, "ImportExampleGen", "examples"), "test", 10 ** 9), model)
    print(f"test impressions {labels.size}, clicked {int(labels.sum())}, "
          f"exact click AUC {report['metrics']['auc']:.5f}")
    assert report["metrics"]["auc"] == pytest.approx(_pair_auc(labels, scores), abs=1e-9), report
    assert report["metrics"]["auc"] >= first["checks"][1]["min_auc"] and report["baseline_model"] is None, report


def _impressions(records, model_dir):
    """(click labels, click scores) of the impressions (N1 items) of the serialized ExampleListWithContext
    ``records``, scored by the SavedModel ``model_dir``'s score_candidates."""
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import input_pb2

    from tfrec.features import SAMPLE_N1

    out = tf.saved_model.load(model_dir).signatures["score_candidates"](lists=tf.constant(records))["click"].numpy()
    labels, scores = [], []
    for i, record in enumerate(records):
        for j, item in enumerate(input_pb2.ExampleListWithContext.FromString(record).examples):
            feature = item.features.feature
            if feature["sample_type"].int64_list.value[0] == SAMPLE_N1:
                labels.append(feature["click"].float_list.value[0])
                scores.append(out[i, j])
    return np.array(labels), np.array(scores, dtype=np.float64)


def _pair_auc(labels, scores):
    """The share of (positive, negative) pairs ordered right, ties counting one half."""
    import numpy as np

    pos, neg = scores[labels > 0][:, None], scores[labels <= 0][None, :]
    return float(np.mean((pos > neg) + 0.5 * (pos == neg)))


def test_a_rerun_with_nothing_changed_is_fully_cached(first):
    from tfx import v1 as tfx

    root, serving = first["root"], first["serving"]
    before = list_versions(serving)
    tfx.orchestration.LocalDagRunner().run(_pipeline(root, first["prepared"], serving, first["checks"]))
    assert executions(root) == {n: ["COMPLETE", "CACHED"] for n in NODES}, executions(root)
    assert list_versions(serving) == before


def test_a_worse_model_is_not_blessed_and_nothing_is_pushed(first):
    """A Three-Tower export that scores every candidate 0.5 (click AUC 0.5 on the impressions) in the same
    pipeline over the same data: the checks are cached, TfrecEvaluator does not bless it (below evaluator.min_auc
    and below the pushed model), and the stock Pusher pushes nothing."""
    from tfx import v1 as tfx

    from pipelines.tfx.components import read_json

    root, serving = first["root"], first["serving"]
    before = list_versions(serving)
    tfx.orchestration.LocalDagRunner().run(_pipeline(root, first["prepared"], serving, first["checks"],
                                                     module_file=os.path.join(HERE, "constant_module.py")))
    states = executions(root)
    assert [states[n][-1] for n in NODES] == ["CACHED"] * 3 + ["COMPLETE"] * 3, states
    blessing = newest(root, "TfrecEvaluator", "blessing")
    assert "NOT_BLESSED" in os.listdir(blessing) and "BLESSED" not in os.listdir(blessing)
    report = read_json(os.path.join(blessing, "evaluation.json"))
    pushed = os.path.join(serving, str(before[-1]))
    assert report["metrics"]["auc"] == 0.5 and report["baseline_model"] == pushed, report
    assert report["reasons"] == [
        f"AUC 0.50000 < evaluator.min_auc {first['checks'][1]['min_auc']}",
        f"AUC 0.50000 is below the blessed model's {report['baseline_metrics']['auc']:.5f} - max_auc_drop "
        f"{first['checks'][1]['max_auc_drop']} ({pushed})"], report
    assert list_versions(serving) == before


def _drift(logs, out):
    """A copy of the cascade logs ``logs`` in ``out`` where the users clicked the first half of every request's
    impressions besides their own clicks (the impressions' click rate several times the original's)."""
    os.makedirs(out)
    with open(os.path.join(logs, "requests.jsonl"), encoding="utf-8") as f, \
            open(os.path.join(out, "requests.jsonl"), "w", encoding="utf-8") as g:
        for line in f:
            r = json.loads(line)
            extra = [i for i in r["exposed"][:max(1, len(r["exposed"]) // 2)] if i not in r["clicks"]]
            r["clicks"] = r["clicks"] + extra
            r["all_scenario_clicks"] = r["all_scenario_clicks"] + [i for i in extra
                                                                   if i not in r["all_scenario_clicks"]]
            g.write(json.dumps(r) + "\n")
    with open(os.path.join(logs, "items.jsonl"), encoding="utf-8") as f, \
            open(os.path.join(out, "items.jsonl"), "w", encoding="utf-8") as g:
        g.write(f.read())
    return out


def test_drifted_click_rate_stops_at_the_listwise_validator_and_nothing_is_trained_or_pushed(first):
    from tfx import v1 as tfx

    from pipelines.tfx.components import read_json

    root, serving = first["root"], first["serving"]
    drifted = _prepare(_drift(first["logs"], str(first["work"] / "drifted_logs")), str(first["work"] / "drifted"))
    before, runs = list_versions(serving), {n: len(s) for n, s in executions(root).items()}
    with pytest.raises(ComponentError) as failed:
        tfx.orchestration.LocalDagRunner().run(_pipeline(root, drifted, serving, first["checks"]))
    # The validator names the drift of the impressions' click rate, with the rates and the threshold.
    found = re.search(r"\[positive_rate_drift\] train click rate (\S+) differs from the schema's (\S+) by \d+% "
                      r"\(threshold 30%\)", str(failed.value))
    assert found, str(failed.value)
    rate, reference = map(float, found.groups())
    assert rate / reference - 1 > first["listwise"][1]["positive_rate_drift"], found.groups()
    # ml-metadata: the statistics ran on the new data, the validator FAILED, nothing after it ran or was pushed.
    states = executions(root)
    assert {n: s[-1] for n, s in states.items() if len(s) > runs[n]} == {
        "ImportExampleGen": "COMPLETE", "ListwiseStatisticsGen": "COMPLETE",
        "ListwiseExampleValidator": "FAILED"}, states
    assert list_versions(serving) == before
    # The drifted data did not become the reference: the baseline's click rate is still the first run's.
    baseline = read_json(os.path.join(root, "baseline", "statistics.json"))
    assert abs(baseline["train"]["labels"]["click"]["positive_rate"] - reference) < 1e-4, baseline["train"]
