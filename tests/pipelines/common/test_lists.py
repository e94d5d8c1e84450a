"""The list-wise pipelines' shared accounting (``pipelines.common.lists``) on counts written by hand: the stats it
derives, and each way the counts can fail to add up."""

from __future__ import annotations

import collections
import dataclasses
import json
import os

import pytest

from pipelines.common.lists import COUNTS_FILE, count_list, finalize_lists, write_list_counts
from pipelines.common.rows import RowAccountingError
from pipelines.common.sink import ShardResult
from tfrec.features import HCCP, SAMPLE_TYPES

N1, N5 = SAMPLE_TYPES["N1"], SAMPLE_TYPES["N5"]
SCHEMA = dataclasses.replace(HCCP, tasks=("click", "purchase"))


def _stats():
    """Three train lists and one test list counted by count_list; two rejected requests."""
    stats = collections.defaultdict(collections.Counter)
    lists = {"train": [{"item": ["a", "b", "c"], "sample_type": [N1, N1, N5], "click": [1, 0, 0], "purchase": [0, 0, 0]},
                       {"item": ["d", "e"], "sample_type": [N1, N5], "click": [0, 0], "purchase": [0, 0]},
                       {"item": ["f"], "sample_type": [N1], "click": [1], "purchase": [1]}],
             "test": [{"item": ["g", "h"], "sample_type": [N1, N1], "click": [0, 1], "purchase": [0, 0]}]}
    for split, cols_list in lists.items():
        for cols in cols_list:
            count_list(stats[split], cols, SCHEMA.tasks)
    stats["deadletter"] = collections.Counter({"bad_json": 1, "unknown_item": 1})
    return {k: dict(v) for k, v in stats.items()}


def _write(out, written=None, dead=(2,), **extra):
    written = written or {"train": (2, 1), "test": (1,)}
    results = [ShardResult((s, k), f"{s}-{k:05d}-of-00002.tfrecord.gz", n)
               for s, per_shard in written.items() for k, n in enumerate(per_shard)]
    dead_results = [ShardResult(("deadletter", 0), "deadletter/deadletter-00000-of-00001.jsonl", n) for n in dead]
    temp = os.path.join(out, ".temp-run")
    os.makedirs(temp)
    write_list_counts(out, temp, 6, _stats(), results, dead_results, **extra)
    assert not os.path.exists(temp)


def test_count_list_counts_requests_items_types_and_positives():
    c = collections.Counter()
    count_list(c, {"item": [1, 2, 3], "sample_type": [N1, N1, N5], "click": [1.0, 0.0, 0.0]}, ("click",))
    assert c == {"requests": 1, "items": 3, "N1": 2, "N5": 1, "positives_click": 1}


def test_finalize_writes_the_stats_and_removes_the_counts(tmp_path):
    out = str(tmp_path)
    _write(out, items_in_table=9)
    stats = finalize_lists(out, "prepare-test", SCHEMA, extra_keys=("items_in_table",), extra={"ranker": {"x": 1}})
    assert stats["requests_in"] == 6 and stats["requests_rejected"] == 2
    assert stats["requests_written"] == {"train": 3, "valid": 0, "test": 1}
    assert stats["rejected_by_reason"] == {"bad_json": 1, "unknown_item": 1}
    assert stats["items_per_sample_type"]["train"]["N1"] == 4 and stats["items_per_sample_type"]["train"]["N5"] == 2
    assert stats["label_rate_on_impressions"]["train"] == {"click": 0.5, "purchase": 0.25}
    assert stats["label_rate_on_impressions"]["valid"] == {"click": None, "purchase": None}
    assert stats["mean_list_size"] == {"train": 2.0, "valid": None, "test": 2.0}
    assert stats["items_in_table"] == 9 and stats["ranker"] == {"x": 1}
    assert stats["files"]["train"] == ["train-00000-of-00002.tfrecord.gz", "train-00001-of-00002.tfrecord.gz"]
    assert not os.path.exists(os.path.join(out, COUNTS_FILE))
    with open(os.path.join(out, "stats.json"), encoding="utf-8") as f:
        assert json.load(f) == stats
    with open(os.path.join(out, "schema.json"), encoding="utf-8") as f:
        assert json.load(f) == SCHEMA.to_json()


@pytest.mark.parametrize("written,dead,extra,message", [
    ({"train": (2, 0), "test": (1,)}, (2,), {}, "train: the parser sent 3 requests, the sink wrote 2"),
    ({"train": (2, 1), "test": (1, 1)}, (2,), {}, "test: the parser sent 1 requests, the sink wrote 2"),
    ({"train": (2, 1), "test": (1,)}, (1,), {}, "dead letter: 2 rejected, 1 written"),
    # an item-table line in the dead letter is not a request: without other_dead it looks like one too many
    ({"train": (2, 1), "test": (1,)}, (3,), {}, "dead letter: 2 rejected, 3 written"),
])
def test_finalize_fails_when_the_sinks_disagree(tmp_path, written, dead, extra, message):
    out = str(tmp_path)
    _write(out, written=written, dead=dead, **extra)
    with pytest.raises(RowAccountingError, match=message.replace("(", r"\(")):
        finalize_lists(out, "prepare-test", SCHEMA)
    assert os.path.exists(os.path.join(out, COUNTS_FILE)), "the counts are kept for the reader of the error"
    assert not os.path.exists(os.path.join(out, "stats.json"))


def test_finalize_subtracts_the_dead_letter_lines_that_are_not_requests(tmp_path):
    out = str(tmp_path)
    _write(out, dead=(3,), items_rejected=1)
    stats = finalize_lists(out, "prepare-test", SCHEMA, other_dead="items_rejected")
    assert stats["requests_rejected"] == 2


def test_finalize_fails_when_requests_in_does_not_add_up(tmp_path):
    out = str(tmp_path)
    _write(out)
    path = os.path.join(out, COUNTS_FILE)
    with open(path, encoding="utf-8") as f:
        counts = json.load(f)
    counts["requests_in"] = 7
    with open(path, "w", encoding="utf-8") as f:
        json.dump(counts, f)
    with pytest.raises(RowAccountingError, match=r"requests_in=7 != requests_written 4 .* requests_rejected 2"):
        finalize_lists(out, "prepare-test", SCHEMA)
