"""End-to-end tests of the Criteo Beam pipeline (``pipelines.criteo``) on the DirectRunner with small data."""

from __future__ import annotations

import collections
import glob
import gzip
import hashlib
import json
import math
import os
import random

import pytest

import pipelines.criteo as criteo
from pipelines.criteo.combiners import (MergeAccumulatorsFn, PipelineStatsFn, ScaleCombineFn, VocabCombineFn,
                                        vocabulary)
from pipelines.criteo.parse import KAGGLE, parse_line
from tfrec.config import PrepareConfig
from tfrec.features import CRITEO, CRITEO_CATEGORICAL, CRITEO_DENSE, MISSING_TOKEN
from tfrec.transforms import ScaleAccumulator

BETA = 0.5
SPLITS = ("train", "valid", "test")
X1_HEADER = ",".join(["label", *CRITEO_DENSE, *CRITEO_CATEGORICAL])


# ----------------------------------------------------------------------------------------------- data


def kaggle_lines(n: int, seed: int):
    """Valid Kaggle rows (str); every 5th row has 1..3 trailing empty fields stripped (37..39 fields)."""
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        label = "1" if rng.random() < 0.3 else "0"
        dense = ["" if rng.random() < 0.15 else str(rng.randint(-3, 3) if j == 1 else rng.randint(0, 5000))
                 for j in range(13)]
        cats = ["" if rng.random() < 0.1 else f"{rng.randint(0, 40 + j):08x}" for j in range(26)]
        fields = [label, *dense, *cats]
        if i % 5 == 0:
            k = 1 + i % 3
            fields[-k:] = [""] * k
            fields[-k - 1] = fields[-k - 1] or "abcdef12"
            fields = fields[:-k]
        lines.append("\t".join(fields))
    return lines


def expected_row(line: str, sep: str):
    """An independent reading of a valid line: (label, dense floats or None, categorical str or '')."""
    fields = line.split(sep)
    fields += [""] * (40 - len(fields))
    return (float(fields[0]), tuple(float(v) if v else None for v in fields[1:14]), tuple(fields[14:]))


GOOD = kaggle_lines(1, 99)[0]


def with_field(index: int, value: str, base: str = GOOD) -> str:
    fields = base.split("\t") + [""] * (40 - len(base.split("\t")))
    fields[index] = value
    return "\t".join(fields)


#: (raw line bytes, reason): one or more malformed lines of every kind.
BAD_LINES = [
    (b"", "empty_line"),
    (b"   ", "empty_line"),
    (with_field(20, "ab").encode().replace(b"ab", b"\xff\xfe", 1), "undecodable_bytes"),
    ("\t".join(GOOD.split("\t")[:36]).encode(), "wrong_field_count"),
    ((with_field(39, "aa") + "\t12").encode(), "wrong_field_count"),
    (with_field(0, "2").encode(), "bad_label"),
    (with_field(0, "").encode(), "bad_label"),
    (with_field(3, "12a").encode(), "non_numeric_integer"),
    (with_field(5, "1.5").encode(), "non_numeric_integer"),
    (with_field(18, "xyz!").encode(), "bad_categorical"),
]


def write_kaggle_file(path: str, n_good: int, seed: int):
    good = kaggle_lines(n_good, seed)
    lines = [g.encode() for g in good]
    step = max(1, n_good // (len(BAD_LINES) + 1))
    for i, (bad, _) in enumerate(BAD_LINES):
        lines.insert((i + 1) * step + i, bad)
    with open(path, "wb") as f:
        f.write(b"\n".join(lines) + b"\n")
    return good


# ----------------------------------------------------------------------------------------------- helpers


def cfg_for(output, **kwargs) -> PrepareConfig:
    kwargs.setdefault("num_shards", 2)
    return PrepareConfig(output=str(output), runner="DirectRunner", **kwargs)


def read_split(out_dir, split):
    import tensorflow as tf

    files = sorted(glob.glob(os.path.join(str(out_dir), f"{split}-*-of-*.tfrecord.gz")))
    assert files, f"no {split} shards in {out_dir}"
    return [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]


def decode(serialized):
    """Examples through CRITEO.parse_spec(): list of (label, weight, dense tuple, categorical tuple)."""
    import tensorflow as tf

    if not serialized:
        return []
    parsed = tf.io.parse_example(tf.constant(serialized), CRITEO.parse_spec())
    parsed = {k: v.numpy() for k, v in parsed.items()}
    rows = []
    for i in range(len(serialized)):
        dense = tuple(None if math.isnan(parsed[d][i]) else float(parsed[d][i]) for d in CRITEO_DENSE)
        cats = tuple(parsed[c][i].decode("utf-8") for c in CRITEO_CATEGORICAL)
        rows.append((float(parsed["label"][i]), float(parsed["weight"][i]), dense, cats))
    return rows


def read_deadletter(out_dir):
    records = []
    for path in sorted(glob.glob(os.path.join(str(out_dir), "deadletter", "*.jsonl"))):
        with open(path, encoding="utf-8") as f:
            records.extend(json.loads(line) for line in f if line.strip())
    return records


def read_json(out_dir, name):
    with open(os.path.join(str(out_dir), name), encoding="utf-8") as f:
        return json.load(f)


# ----------------------------------------------------------------------------------------------- kaggle run


@pytest.fixture(scope="module")
def kaggle_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("kaggle")
    src = str(root / "train.txt")
    good = write_kaggle_file(src, 3000, seed=1)
    stats = criteo.run(cfg_for(root / "out", inputs=[src], beta_pos=BETA, min_count=10))
    examples = {s: read_split(root / "out", s) for s in SPLITS}
    return {"root": root, "src": src, "good": good, "stats": stats, "out": root / "out", "examples": examples}


def test_output_layout(kaggle_run):
    out = kaggle_run["out"]
    for s in SPLITS:
        assert sorted(os.path.basename(p) for p in glob.glob(str(out / f"{s}-*"))) == [
            f"{s}-00000-of-00002.tfrecord.gz", f"{s}-00001-of-00002.tfrecord.gz"]
        assert kaggle_run["stats"]["files"][s] == [f"{s}-00000-of-00002.tfrecord.gz",
                                                   f"{s}-00001-of-00002.tfrecord.gz"]
    assert sorted(os.listdir(out / "vocab")) == sorted(f"{c}.txt" for c in CRITEO_CATEGORICAL)
    assert read_json(out, "schema.json") == CRITEO.to_json()
    assert not os.path.exists(out / "_counts.json")
    assert read_json(out, "stats.json") == json.loads(json.dumps(kaggle_run["stats"]))


def test_deadletter_has_every_bad_row_with_its_reason(kaggle_run):
    records = read_deadletter(kaggle_run["out"])
    got = collections.Counter((r["reason"], r["row"]) for r in records)
    want = collections.Counter((reason, raw.decode("utf-8", errors="backslashreplace")) for raw, reason in BAD_LINES)
    assert got == want
    assert {r["source"] for r in records} == {kaggle_run["src"]}
    assert all(r["message"] for r in records)
    undecodable = [r for r in records if r["reason"] == "undecodable_bytes"][0]
    assert "\\xff\\xfe" in undecodable["row"]
    count_msg = [r["message"] for r in records if r["reason"] == "wrong_field_count"]
    assert any("36" in m for m in count_msg) and any("41" in m for m in count_msg)
    want_counts = {r: 0 for r in criteo.REASONS}
    want_counts.update(collections.Counter(reason for _, reason in BAD_LINES))
    assert kaggle_run["stats"]["rejected_by_reason"] == want_counts
    assert all(want_counts.values())  # the file has every kind


def test_row_accounting_recounted_from_files(kaggle_run):
    stats = kaggle_run["stats"]
    n_lines = len(kaggle_run["good"]) + len(BAD_LINES)
    written = {s: len(kaggle_run["examples"][s]) for s in SPLITS}
    dead = read_deadletter(kaggle_run["out"])
    assert stats["rows_in"] == n_lines
    assert stats["rows_written"] == written
    assert stats["rows_rejected"] == len(dead) == len(BAD_LINES)
    assert stats["rows_in"] == sum(written.values()) + len(dead)


def test_split_is_about_7_2_1(kaggle_run):
    written = kaggle_run["stats"]["rows_written"]
    total = sum(written.values())
    assert total == 3000
    for s, share in zip(SPLITS, (0.7, 0.2, 0.1)):
        assert abs(written[s] / total - share) < 0.04, written
    assert kaggle_run["stats"]["split"] == {"mode": "hash", "ratios": [0.7, 0.2, 0.1], "salt": "tfrec"}


def test_split_deterministic_across_runs(kaggle_run, tmp_path):
    stats = criteo.run(cfg_for(tmp_path / "again", inputs=[kaggle_run["src"]], beta_pos=BETA, num_shards=3))
    for s in SPLITS:
        again = read_split(tmp_path / "again", s)
        assert collections.Counter(again) == collections.Counter(kaggle_run["examples"][s]), s
    assert stats["rows_written"] == kaggle_run["stats"]["rows_written"]


def test_values_in_examples_equal_the_input(kaggle_run):
    want = collections.Counter(expected_row(line, "\t") for line in kaggle_run["good"])
    got = collections.Counter()
    for s in SPLITS:
        for label, weight, dense, cats in decode(kaggle_run["examples"][s]):
            got[(label, dense, cats)] += 1
    assert got == want
    # the stripped rows were padded: some rows have C24..C26 missing and are present.
    assert any(line.count("\t") < 39 for line in kaggle_run["good"])


def test_weights_and_positive_rates(kaggle_run):
    stats = kaggle_run["stats"]
    assert stats["beta_pos"] == BETA
    for s in SPLITS:
        rows = decode(kaggle_run["examples"][s])
        for label, weight, _, _ in rows:
            assert weight == (BETA if label == 1.0 else 1.0)
        p = sum(r[0] for r in rows) / len(rows)
        assert stats["positive_rate"][s] == pytest.approx(p)
        assert stats["effective_positive_rate"][s] == pytest.approx(BETA * p / (BETA * p + 1 - p))
        assert stats["effective_positive_rate"][s] < p


def test_vocabulary_and_transform_fitted_on_train(kaggle_run):
    out = kaggle_run["out"]
    train = decode(kaggle_run["examples"]["train"])
    scale = ScaleAccumulator("log_minmax", CRITEO_DENSE)
    for _, _, dense, _ in train:
        scale.add({d: x for d, x in zip(CRITEO_DENSE, dense) if x is not None})
    transform = read_json(out, "transform.json")
    assert transform["kind"] == "log_minmax"
    assert transform["scale"] == pytest.approx(scale.params()["scale"])
    for j, field in enumerate(CRITEO_CATEGORICAL):
        counts = collections.Counter(cats[j] or MISSING_TOKEN for _, _, _, cats in train)
        want = sorted((t for t, n in counts.items() if n >= 10), key=lambda t: (-counts[t], t))
        with open(out / "vocab" / f"{field}.txt", encoding="utf-8") as f:
            assert f.read().splitlines() == want, field
        assert kaggle_run["stats"]["vocabulary_sizes"][field] == len(want)


def _split_files(out_dir, split):
    return sorted(glob.glob(os.path.join(str(out_dir), f"{split}-*-of-*.tfrecord.gz")))


def _example_bytes(line: str, beta: float) -> bytes:
    """The documented Example of a valid Kaggle line, built here from :func:`expected_row`: label, weight (beta on
    positives), I1..I13 float_lists and C1..C26 bytes_lists of the present values; deterministic serialization."""
    import tensorflow as tf

    label, dense, cats = expected_row(line, "\t")
    feature = {"label": tf.train.Feature(float_list=tf.train.FloatList(value=[label])),
               "weight": tf.train.Feature(float_list=tf.train.FloatList(value=[beta if label == 1.0 else 1.0]))}
    feature.update({d: tf.train.Feature(float_list=tf.train.FloatList(value=[x]))
                    for d, x in zip(CRITEO_DENSE, dense) if x is not None})
    feature.update({c: tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode()]))
                    for c, v in zip(CRITEO_CATEGORICAL, cats) if v})
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString(deterministic=True)


def _hash_split_and_shard(raw: bytes, salt: str = "tfrec", num_shards: int = 2):
    """The documented split: a keyed 64-bit BLAKE2b (key: the 32-byte BLAKE2b of the salt) of the line's bytes,
    little-endian; train below 0.7 * 2^64, valid below 0.9 * 2^64, else test; shard = hash % num_shards.
    Returns ``(hash, split, shard)``."""
    key = hashlib.blake2b(salt.encode("utf-8"), digest_size=32).digest()
    h = int.from_bytes(hashlib.blake2b(raw, digest_size=8, key=key).digest(), "little")
    split = "train" if h < 0.7 * 2 ** 64 else ("valid" if h < 0.9 * 2 ** 64 else "test")
    return h, split, h % num_shards


def test_records_are_to_example_bytes_in_their_hash_shard(kaggle_run):
    """Each shard holds exactly the Example bytes of the rows whose keyed hash picks its split and shard (both
    computed here from the documented formulas, not with the pipeline's own splitter and serializer)."""
    import tensorflow as tf

    from pipelines.criteo.pipeline import HashSplitter

    assert kaggle_run["stats"]["split"] == {"mode": "hash", "ratios": [0.7, 0.2, 0.1], "salt": "tfrec"}
    splitter = HashSplitter((0.7, 0.2, 0.1), "tfrec", 2)  # the other pipelines' splitter agrees with it too
    want = collections.defaultdict(collections.Counter)
    for line in kaggle_run["good"]:
        h, split, shard = _hash_split_and_shard(line.encode())
        assert (splitter.hash(line.encode()), splitter.split_of(h), splitter.shard_of(h)) == (h, split, shard)
        want[(split, shard)][_example_bytes(line, BETA)] += 1
    got = {}
    for s in SPLITS:
        for k, path in enumerate(_split_files(kaggle_run["out"], s)):
            assert path.endswith(f"{s}-{k:05d}-of-00002.tfrecord.gz")
            got[(s, k)] = collections.Counter(r.numpy() for r in tf.data.TFRecordDataset(path, compression_type="GZIP"))
    assert got == {key: want[key] for key in got} and set(want) <= set(got)
    assert sum(sum(c.values()) for c in got.values()) == len(kaggle_run["good"])


def test_beam_read_from_tfrecord_reads_the_shards(kaggle_run):
    import apache_beam as beam
    from apache_beam.testing.util import assert_that, equal_to

    for s in SPLITS:
        want = kaggle_run["examples"][s]
        with beam.Pipeline("DirectRunner") as p:
            got = p | beam.io.ReadFromTFRecord(str(kaggle_run["out"] / f"{s}-*-of-*.tfrecord.gz"))
            assert_that(got, equal_to(want))


def test_no_temporary_files_left(kaggle_run):
    names = os.listdir(kaggle_run["out"])
    assert not [n for n in names if "temp" in n], names


def test_tfrecord_framing_equals_tf_writer(tmp_path):
    import tensorflow as tf
    from apache_beam.io.tfrecordio import _TFRecordUtil

    from pipelines.criteo.tfrecord import frame_records, masked_crc32c

    records = [b"", b"x", bytes(range(256)) * 3, criteo.to_example(parse_line(GOOD.encode(), KAGGLE), BETA),
               b"\xff" * 70000, b"x"]
    path = str(tmp_path / "plain.tfrecord")
    with tf.io.TFRecordWriter(path) as w:  # no compression: the framing bytes themselves
        for r in records:
            w.write(r)
    with open(path, "rb") as f:
        assert frame_records(records) == f.read()
    assert frame_records([]) == b""
    for r in records:
        assert masked_crc32c(r) == _TFRecordUtil._masked_crc32c(r)


def test_empty_splits_and_shards_are_valid_files(tmp_path):
    import apache_beam as beam
    import tensorflow as tf
    from apache_beam.testing.util import assert_that, equal_to

    (tmp_path / "a.txt").write_text("\n".join(kaggle_lines(2, seed=6)) + "\n")
    stats = criteo.run(cfg_for(tmp_path / "out", inputs=[str(tmp_path / "a.txt")], split_ratios=[1.0, 0.0, 0.0],
                               num_shards=3))
    assert stats["rows_written"] == {"train": 2, "valid": 0, "test": 0}
    assert stats["num_shards"] == 3
    sizes = []
    for s in SPLITS:
        paths = _split_files(tmp_path / "out", s)
        assert [os.path.basename(f) for f in paths] == [f"{s}-{k:05d}-of-00003.tfrecord.gz" for k in range(3)]
        assert stats["files"][s] == [os.path.basename(f) for f in paths]
        n = [sum(1 for _ in tf.data.TFRecordDataset(f, compression_type="GZIP")) for f in paths]
        sizes.append(n)
        with gzip.open(paths[0], "rb") as f:  # a GZIP stream even when empty
            f.read()
    assert sum(sizes[0]) == 2 and 0 in sizes[0]  # 2 rows in 3 shards: an empty train shard too
    assert sizes[1] == sizes[2] == [0, 0, 0]
    with beam.Pipeline("DirectRunner") as p:
        got = p | beam.io.ReadFromTFRecord(str(tmp_path / "out" / "valid-*-of-*.tfrecord.gz"))
        assert_that(got, equal_to([]))


def test_num_shards_zero_writes_one_shard_per_split(tmp_path):
    (tmp_path / "a.txt").write_text("\n".join(kaggle_lines(30, seed=7)) + "\n")
    stats = criteo.run(cfg_for(tmp_path / "out", inputs=[str(tmp_path / "a.txt")], num_shards=0))
    assert stats["num_shards"] == 1
    for s in SPLITS:
        assert stats["files"][s] == [f"{s}-00000-of-00001.tfrecord.gz"]
    assert sum(len(read_split(tmp_path / "out", s)) for s in SPLITS) == 30


# ----------------------------------------------------------------------------------------------- files mode


def _kaggle_row(label: str, c1: str) -> str:
    return "\t".join([label, *["1"] * 13, c1, *["00"] * 25])


def test_files_mode_min_count_vocabulary_on_train_only(tmp_path):
    train_c1 = ["aa"] * 3 + ["bb"] * 2 + ["cc"] * 3 + ["dd"] * 4 + [""] * 3
    valid_c1 = ["bb"] * 5 + ["ee"] * 10
    (tmp_path / "train.txt").write_text("\n".join(_kaggle_row(str(i % 2), c) for i, c in enumerate(train_c1)))
    (tmp_path / "valid.txt").write_text("\n".join(_kaggle_row("0", c) for c in valid_c1) + "\n")
    stats = criteo.run(cfg_for(tmp_path / "out", train=[str(tmp_path / "train.txt")],
                               valid=[str(tmp_path / "valid.txt")], min_count=3, num_shards=1))
    vocab = (tmp_path / "out" / "vocab" / "C1.txt").read_text().splitlines()
    # count >= 3 on train only, by count descending then token ascending; "missing" is a token.
    assert vocab == ["dd", MISSING_TOKEN, "aa", "cc"]
    assert (tmp_path / "out" / "vocab" / "C2.txt").read_text().splitlines() == ["00"]
    assert stats["vocabulary_sizes"]["C1"] == 4
    assert stats["rows_written"] == {"train": 15, "valid": 15, "test": 0}
    assert stats["split"]["mode"] == "files"
    assert stats["split"]["inputs"]["train"] == [str(tmp_path / "train.txt")]
    # the missing test split is an empty (but valid) shard set.
    assert stats["files"]["test"] == ["test-00000-of-00001.tfrecord.gz"]
    assert read_split(tmp_path / "out", "test") == []
    assert stats["positive_rate"]["test"] is None and stats["effective_positive_rate"]["test"] is None
    assert len(read_split(tmp_path / "out", "valid")) == 15


def test_file_listed_for_two_splits_is_an_error(tmp_path):
    (tmp_path / "a.txt").write_text(_kaggle_row("1", "aa") + "\n")
    with pytest.raises(ValueError, match="a.txt"):
        criteo.run(cfg_for(tmp_path / "out", train=[str(tmp_path / "a.txt")], valid=[str(tmp_path / "*.txt")]))


# ----------------------------------------------------------------------------------------------- criteo_x1


def test_x1_csv_gzip_with_header_and_auto_format(tmp_path):
    rng = random.Random(3)
    rows = []
    for i in range(200):
        dense = ["" if rng.random() < 0.2 else rng.choice(["0.05", "3.0", "-1.5", "0.25", "7", "1e-2"])
                 for _ in range(13)]
        cats = ["" if rng.random() < 0.1 else rng.choice(["tok", "hello world", "ünï", "x_1", "12"])
                for _ in range(26)]
        rows.append(",".join(["1" if i % 3 == 0 else "0", *dense, *cats]))
    bad = ",".join(["1", "abc", *[""] * 12, *["t"] * 26])
    with gzip.open(tmp_path / "train.csv.gz", "wt", encoding="utf-8") as f:
        f.write("\n".join([X1_HEADER, *rows[:100], bad, *rows[100:]]) + "\n")
    kaggle = kaggle_lines(50, seed=4)
    (tmp_path / "more.txt").write_text("\n".join(kaggle) + "\n")
    stats = criteo.run(cfg_for(tmp_path / "out", inputs=[str(tmp_path / "train.csv.gz"),
                                                         str(tmp_path / "more.txt")],
                               beta_pos=BETA, numeric_transform="minmax", min_count=10))
    assert stats["input_format"] == "auto"
    assert stats["input_formats"] == {str(tmp_path / "train.csv.gz"): "x1", str(tmp_path / "more.txt"): "kaggle"}
    assert stats["rows_in"] == 200 + 1 + 50  # the header is not a row
    assert stats["rows_rejected"] == 1 and stats["rejected_by_reason"]["non_numeric_integer"] == 1
    dead = read_deadletter(tmp_path / "out")
    assert [(d["reason"], d["row"]) for d in dead] == [("non_numeric_integer", bad)]
    assert "I1" in dead[0]["message"]
    got = collections.Counter()
    for s in SPLITS:
        for label, _, dense, cats in decode(read_split(tmp_path / "out", s)):
            got[(label, tuple(None if x is None else round(x, 6) for x in dense), cats)] += 1
    want = collections.Counter()
    for line, sep in [(r, ",") for r in rows] + [(k, "\t") for k in kaggle]:
        label, dense, cats = expected_row(line, sep)
        want[(label, tuple(None if x is None else round(float(_f32(x)), 6) for x in dense), cats)] += 1
    assert got == want
    assert read_json(tmp_path / "out", "transform.json")["kind"] == "minmax"


def _f32(x):
    import numpy as np

    return np.float32(x)


def test_explicit_x1_format_skips_header(tmp_path):
    (tmp_path / "x.csv").write_text(X1_HEADER + "\n" + ",".join(["1", *["0.5"] * 13, *["a"] * 26]) + "\n")
    stats = criteo.run(cfg_for(tmp_path / "out", inputs=[str(tmp_path / "x.csv")], input_format="x1",
                               split_ratios=[1.0, 0.0, 0.0], num_shards=1))
    assert stats["rows_in"] == 1 and stats["rows_written"] == {"train": 1, "valid": 0, "test": 0}
    assert (tmp_path / "out" / "vocab" / "C1.txt").read_text() == "a\n"  # x1's default min count is 1


# ----------------------------------------------------------------------------------------------- errors


def test_build_then_finalize_checks_row_accounting(tmp_path):
    import apache_beam as beam

    (tmp_path / "a.txt").write_text("\n".join(kaggle_lines(20, seed=5)) + "\n")
    cfg = cfg_for(tmp_path / "out", inputs=[str(tmp_path / "a.txt")], num_shards=1)
    plan = criteo.plan_inputs(cfg)
    with beam.Pipeline(options=criteo.pipeline_options(cfg)) as p:
        criteo.build(p, cfg, plan)
    counts_path = tmp_path / "out" / "_counts.json"
    counts = json.loads(counts_path.read_text())
    assert counts["rows_in"] == 20
    counts["rows_in"] = 21  # a row lost somewhere
    counts_path.write_text(json.dumps(counts))
    with pytest.raises(RuntimeError, match="rows_in=21"):
        criteo.finalize(cfg, plan)
    assert not (tmp_path / "out" / "stats.json").exists()


def test_missing_input_path_names_the_path(tmp_path):
    missing = str(tmp_path / "nope" / "train.txt")
    with pytest.raises(FileNotFoundError, match="nope/train.txt"):
        criteo.run(cfg_for(tmp_path / "out", inputs=[missing]))
    with pytest.raises(FileNotFoundError, match=r"\*\.gz"):
        criteo.run(cfg_for(tmp_path / "out", inputs=[str(tmp_path / "*.gz")]))


def test_no_inputs_and_empty_output_errors(tmp_path):
    (tmp_path / "a.txt").write_text(_kaggle_row("1", "aa") + "\n")
    with pytest.raises(ValueError, match="no inputs"):
        criteo.run(cfg_for(tmp_path / "out"))
    with pytest.raises(ValueError, match="output"):
        criteo.run(cfg_for("", inputs=[str(tmp_path / "a.txt")]))


# ----------------------------------------------------------------------------------------------- units


def test_to_example_round_trip():
    import tensorflow as tf

    row = parse_line(b"\t".join([b"1", b"-2", *[b""] * 12, b"0a0b", *[b""] * 25]), KAGGLE)
    ex = tf.train.Example.FromString(criteo.to_example(row, 0.25))
    f = ex.features.feature
    assert f["label"].float_list.value == [1.0] and f["weight"].float_list.value == [0.25]
    assert f["I1"].float_list.value == [-2.0] and "I2" not in f
    assert f["C1"].bytes_list.value == [b"0a0b"] and "C2" not in f
    neg = parse_line(b"\t".join([b"0", *[b""] * 39]), KAGGLE)
    assert tf.train.Example.FromString(criteo.to_example(neg, 0.25)).features.feature["weight"].float_list.value \
        == [1.0]
    # The bytes: the deterministic serialization of the same Example built here.
    want = tf.train.Example(features=tf.train.Features(feature={
        "label": tf.train.Feature(float_list=tf.train.FloatList(value=[1.0])),
        "weight": tf.train.Feature(float_list=tf.train.FloatList(value=[0.25])),
        "I1": tf.train.Feature(float_list=tf.train.FloatList(value=[-2.0])),
        "C1": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"0a0b"]))}))
    assert criteo.to_example(row, 0.25) == want.SerializeToString(deterministic=True)


def test_scale_combine_fn_equals_scale_accumulator():
    rng = random.Random(0)
    rows = [criteo.Row(0, [None if rng.random() < 0.3 else rng.uniform(-1e4, 1e6) for _ in range(13)], [])
            for _ in range(1000)]
    for kind in ("log_minmax", "minmax", "none"):
        fn = ScaleCombineFn(kind)
        accs = []
        for chunk in (rows[:300], rows[300:]):
            acc = fn.create_accumulator()
            for r in chunk:
                acc = fn.add_input(acc, r)
            accs.append(fn.compact(acc))
        ref = ScaleAccumulator(kind, CRITEO_DENSE)
        for r in rows:
            ref.add({d: x for d, x in zip(CRITEO_DENSE, r.dense)})
        got = fn.extract_output(fn.merge_accumulators(accs))
        assert got["kind"] == kind and got["scale"] == pytest.approx(ref.params()["scale"])


def test_vocab_combine_fn_merge_and_order():
    fn = VocabCombineFn(min_count=2, fields=("C1",))
    a, b = fn.create_accumulator(), fn.create_accumulator()
    for v in [b"b", b"a", b"", b"c", b"b"]:
        a = fn.add_input(a, criteo.Row(0, [], [v]))
    for v in [b"a", b"", b"c", b"d"]:
        b = fn.add_input(b, criteo.Row(0, [], [v]))
    out = fn.extract_output(fn.merge_accumulators([a, b]))
    assert out == {"C1": [(MISSING_TOKEN, 2), ("a", 2), ("b", 2), ("c", 2)]}
    assert vocabulary(collections.Counter({b"x": 3, b"y": 5, b"z": 1}), 1) == [("y", 5), ("x", 3), ("z", 1)]


def test_pipeline_stats_fn_merges_bundles():
    stats = PipelineStatsFn(min_count=1, kind="none")
    merged = MergeAccumulatorsFn(stats)
    row = criteo.Row(1, [1.0] * 13, [b"aa"] * 26)
    bundles = []
    for _ in range(3):
        acc = stats.create_accumulator()
        acc = stats.add_input(acc, ("train", row))
        acc = stats.add_input(acc, ("valid", row))
        acc = stats.add_input(acc, ("deadletter", {"reason": "bad_label"}))
        bundles.append(acc)
    acc = merged.create_accumulator()
    for b in bundles:
        acc = merged.add_input(acc, b)
    out = merged.extract_output(acc)
    assert out["train"][0] == (3, 3) and out["valid"] == (3, 3) and out["test"] == (0, 0)
    assert out["train"][1]["kind"] == "none"  # the transform; vocabularies are counted per (field, value) apart
    assert out["deadletter"]["bad_label"] == 3


# ----------------------------------------------------------------------------------------------- reader


def _read_range(path, start, stop, split_after_first=None):
    """Lines of ReadLineChunks over [start, stop); optionally a dynamic split after the first chunk."""
    from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker

    from pipelines.common.read import ReadLineChunks

    tracker = OffsetRestrictionTracker(OffsetRange(start, stop))
    out, residual = [], None
    for i, (p, lines) in enumerate(ReadLineChunks().process(path, tracker)):
        assert p == path
        out.extend(lines)
        if i == 0 and split_after_first is not None:
            split = tracker.try_split(split_after_first)
            residual = split[1] if split else None
    tracker.check_done()
    if residual is not None:
        out.extend(_read_range(path, residual.start, residual.stop))
    return out


def test_chunked_reader_splits_lose_and_repeat_nothing(tmp_path, monkeypatch):
    import pipelines.common.read as read

    monkeypatch.setattr(read, "CHUNK_BYTES", 7)
    lines = [b"first", b"", b"a\tb", b"x" * 30, b"crlf\r", b"", b"", b"\xff\xfe bytes", b"last no newline"]
    data = b"\n".join(lines)
    path = str(tmp_path / "lines.txt")
    with open(path, "wb") as f:
        f.write(data)
    size = len(data)
    assert _read_range(path, 0, size) == lines
    for cut in range(0, size + 1):
        assert _read_range(path, 0, cut) + _read_range(path, cut, size) == lines, cut
    for cut1, cut2 in [(3, 9), (5, 6), (10, 40), (0, 1), (size - 2, size - 1)]:
        parts = [(0, cut1), (cut1, cut2), (cut2, size)]
        assert [line for a, b in parts for line in _read_range(path, a, b)] == lines
    for fraction in (0.0, 0.1, 0.5, 0.9):
        assert _read_range(path, 0, size, split_after_first=fraction) == lines
    with open(str(tmp_path / "trailing.txt"), "wb") as f:
        f.write(data + b"\n")  # a final newline adds no empty line
    assert _read_range(str(tmp_path / "trailing.txt"), 0, size + 1) == lines


def test_chunked_reader_gzip_whole_file(tmp_path):
    lines = [f"line {i}".encode() for i in range(1000)] + [b""]
    with gzip.open(tmp_path / "x.txt.gz", "wb") as f:
        f.write(b"\n".join(lines) + b"\n")
    assert _read_range(str(tmp_path / "x.txt.gz"), 0, 1) == lines
