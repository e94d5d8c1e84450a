"""The multi-task Beam pipeline (DirectRunner) on hand-written AliExpress and Ali-CCP files: headers, splits,
dead letters with reasons and counts, rows in = written + rejected, schema.json, the reader's y = [b, 2]."""

import collections
import glob
import json
import os

import numpy as np
import pytest

from tests.support.multitask_files import ALICCP_HEADER, ALIEXPRESS_HEADER, aliccp_lines, aliexpress_lines, write
from pipelines.multitask import LayoutError, run
from tfrec import data as data_lib
from tfrec.config import PrepareConfig
from tfrec.features import MultiTaskSchema


def _deadletter(out):
    records = []
    for path in glob.glob(os.path.join(out, "deadletter", "*.jsonl")):
        with open(path) as f:
            records += [json.loads(line) for line in f if line.strip()]
    return records


def _read_split(out, split):
    schema = data_lib.load_schema(out)
    ds = data_lib.make_dataset(data_lib.split_files(out, split), schema, 64, training=False)
    ys, ws, feats = [], [], []
    for x, y, w in ds:
        ys.append(y.numpy())
        ws.append(w.numpy())
        feats.append(x)
    return schema, np.concatenate(ys), np.concatenate(ws), feats


def test_aliexpress_files_mode_headers_and_deadletter(tmp_path):
    good, bad = aliexpress_lines()
    bad_lines = [line for lines in bad.values() for line in lines]
    # train: header + good rows + malformed rows + a repeated header (concatenated files); valid: no header.
    train = write(tmp_path / "train.csv", good + bad_lines + [ALIEXPRESS_HEADER] + good[:2], ALIEXPRESS_HEADER)
    valid = write(tmp_path / "valid.csv", good[:3])
    test = write(tmp_path / "test.csv", [], ALIEXPRESS_HEADER)  # header only: an empty split
    out = str(tmp_path / "out")
    stats = run(PrepareConfig(train=[train], valid=[valid], test=[test], output=out, input_format="aliexpress",
                              runner="DirectRunner", min_count=1, beta_pos=0.5, num_shards=2))
    n_bad = len(bad_lines)
    assert stats["rows_in"] == len(good) + 2 + n_bad + 3  # header lines are not rows
    assert stats["rows_written"] == {"train": len(good) + 2, "valid": 3, "test": 0}
    assert stats["rows_rejected"] == n_bad
    assert stats["rows_in"] == sum(stats["rows_written"].values()) + stats["rows_rejected"]
    expected = {r: len(v) for r, v in bad.items()}
    assert {r: n for r, n in stats["rejected_by_reason"].items() if n} == expected
    dead = _deadletter(out)
    assert collections.Counter(d["reason"] for d in dead) == collections.Counter(expected)
    assert all(d["source"].endswith("train.csv") and d["message"] for d in dead)
    assert sorted(d["row"] for d in dead) == sorted(bad_lines)
    assert stats["clicks"]["train"] == 3 + 1 and stats["conversions"]["train"] == 2
    assert stats["conversion_rate"]["train"] == pytest.approx(2 / 4)

    schema, y, w, feats = _read_split(out, "train")
    assert isinstance(schema, MultiTaskSchema) and schema.name == "aliexpress"
    assert y.shape == (len(good) + 2, 2) and np.all(y[:, 1] <= y[:, 0])
    assert sorted(map(tuple, y.tolist())) == sorted([(0, 0), (1, 0), (1, 1), (0, 0), (1, 1), (0, 0), (1, 0)])
    np.testing.assert_array_equal(w, np.where(y[:, 0] == 1, 0.5, 1.0))  # beta_pos on click positives
    x = {k: np.concatenate([f[k].numpy() for f in feats]) for k in feats[0]}
    assert set(x) == set(schema.feature_names) and "search_id" not in x
    assert np.isnan(x["numerical_1"]).sum() == 1 and (x["categorical_1"] == b"").sum() == 1
    with open(os.path.join(out, "vocab", "categorical_2.txt")) as f:
        assert set(f.read().split()) == {"1", "2", "3", "7"}  # 1 + search_id % 3, and row 5's "7"
    assert len(glob.glob(os.path.join(out, "test-*-of-00002.tfrecord.gz"))) == 2
    assert _read_split(out, "valid")[1].shape == (3, 2)


def test_aliccp_hash_split_roles_from_header(tmp_path):
    good, bad = aliccp_lines()
    rows = good * 25  # 100 good rows (equal lines share a split: the split hashes the row)
    a = write(tmp_path / "a.csv", rows[:50] + bad["non_numeric"], ALICCP_HEADER)
    b = write(tmp_path / "b.csv", rows[50:] + bad["conversion_without_click"] + bad["wrong_field_count"],
              "\ufeff" + ALICCP_HEADER)
    out = str(tmp_path / "out")
    stats = run(PrepareConfig(inputs=[str(tmp_path / "*.csv")], output=out, input_format="aliccp",
                              runner="DirectRunner", min_count=2))
    assert stats["rows_in"] == 104 and stats["rows_rejected"] == 4
    assert sum(stats["rows_written"].values()) == 100
    assert {r: n for r, n in stats["rejected_by_reason"].items() if n} == {
        "non_numeric": 1, "conversion_without_click": 1, "wrong_field_count": 2}
    schema = data_lib.load_schema(out)
    assert schema.dense == ("D109_14", "D127_14") and schema.categorical == ("101", "121", "122", "124", "109_14")
    assert stats["columns"] == ALICCP_HEADER.split(",")
    with open(os.path.join(out, "vocab", "109_14.txt")) as f:
        tokens = f.read().split()  # counted on the train split only
    assert tokens and set(tokens) <= {"9", "__MISSING__"}
    total = sum(_read_split(out, s)[1].sum(axis=0) for s in ("train", "valid", "test") if stats["rows_written"][s])
    np.testing.assert_array_equal(total, [50, 25])  # clicks, purchases (-> conversion)


def test_mismatched_headers_are_one_line_errors(tmp_path):
    a = write(tmp_path / "a.csv", aliccp_lines()[0], ALICCP_HEADER)
    b = write(tmp_path / "b.csv", ["1,0,5"], "click,purchase,101")
    with pytest.raises(LayoutError, match="another header"):
        run(PrepareConfig(inputs=[a, b], output=str(tmp_path / "o"), input_format="aliccp", runner="DirectRunner"))
    c = write(tmp_path / "c.csv", aliccp_lines()[0])  # no header
    with pytest.raises(LayoutError, match="must start with its header"):
        run(PrepareConfig(inputs=[c], output=str(tmp_path / "o"), input_format="aliccp", runner="DirectRunner"))
    with pytest.raises(ValueError, match="input_format"):
        run(PrepareConfig(inputs=[a], output=str(tmp_path / "o"), input_format="x1", runner="DirectRunner"))
