"""``tfrec prepare`` at its edges, the way a user meets them: small files written here, the command line's
``main(argv)``, its exit status and its one-line errors (2: usage, config, missing or unusable input; 1: a run
that failed or wrote no usable training data). Every format: Criteo Kaggle TSV, criteo_x1 CSV, AliExpress and
Ali-CCP CSVs."""

from __future__ import annotations

import gzip
import json
import os
import random
import re
import tarfile

import pytest

from tests.support.multitask_files import ALICCP_HEADER, ALIEXPRESS_HEADER, aliccp_lines, aliexpress_row, write
from tfrec.cli import main
from tfrec.features import CRITEO_COLUMNS

X1_HEADER = ",".join(CRITEO_COLUMNS)


def kaggle_rows(n: int, seed: int = 0):
    """``n`` distinct, valid Kaggle TSV rows (no header)."""
    rng = random.Random(seed)
    return ["\t".join([str(i % 2), *[str(rng.randint(0, 500)) for _ in range(13)],
                       *[f"{rng.randint(0, 1 << 20):08x}" for _ in range(26)]]) for i in range(n)]


def x1_rows(n: int, seed: int = 0):
    rng = random.Random(seed)
    return [",".join([str(i % 2), *[f"{rng.random():.4f}" for _ in range(13)], *[f"t{rng.randint(0, 9)}"] * 26])
            for i in range(n)]


def prepare(capsys, *args):
    """``tfrec prepare ARGS`` -> ``(exit status, stdout, stderr's non-empty lines)``."""
    code = main(["prepare", *args, "--progress-every", "0"] if "--progress-every" not in args else ["prepare", *args])
    out, err = capsys.readouterr()
    return code, out, [line for line in err.splitlines() if line.strip()]


def assert_one_line(err, code, got_code, *needles):
    assert got_code == code, err
    assert len(err) == 1 and err[0].startswith("tfrec prepare: error:"), err
    for needle in needles:
        assert needle in err[0], err[0]


def _stats(out):
    with open(os.path.join(out, "stats.json")) as f:
        return json.load(f)


# ------------------------------------------------------------------------------------ no usable training data


@pytest.mark.parametrize("fmt, content", [
    ("auto", ""),                                # an empty Kaggle TSV
    ("x1", X1_HEADER + "\n"),                    # a criteo_x1 CSV with its header only
    ("aliexpress", ALIEXPRESS_HEADER + "\n"),    # an AliExpress CSV with its header only
    ("aliccp", ALICCP_HEADER + "\n"),
])
def test_empty_input_exits_1_with_one_line(tmp_path, capsys, fmt, content):
    (tmp_path / "in.csv").write_text(content)
    code, _, err = prepare(capsys, "--input", str(tmp_path / "in.csv"), "--out", str(tmp_path / "out"),
                           "--format", fmt)
    assert_one_line(err, 1, code, "no rows in the input", "in.csv", "nothing to train on")


def test_all_rows_rejected_exits_1_and_keeps_the_dead_letters(tmp_path, capsys):
    (tmp_path / "bad.txt").write_text("".join("x" + row + "\n" for row in kaggle_rows(5)))  # labels 'x0', 'x1'
    out = str(tmp_path / "out")
    code, stdout, err = prepare(capsys, "--input", str(tmp_path / "bad.txt"), "--out", out)
    assert_one_line(err, 1, code, "all 5 rows were rejected (bad_label 5)", "deadletter")
    assert "rows rejected" in stdout  # the summary is printed before the error
    with open(os.path.join(out, "deadletter", "deadletter-00000-of-00001.jsonl")) as f:
        assert [json.loads(line)["reason"] for line in f] == ["bad_label"] * 5


def test_all_aliccp_rows_rejected_exits_1(tmp_path, capsys):
    _, bad = aliccp_lines()
    path = write(tmp_path / "a.csv", bad["conversion_without_click"] * 3, ALICCP_HEADER)
    code, _, err = prepare(capsys, "--input", path, "--out", str(tmp_path / "out"), "--format", "aliccp")
    assert_one_line(err, 1, code, "all 3 rows were rejected (conversion_without_click 3)")


@pytest.mark.parametrize("ratios, empty", [("[0.0, 0.5, 0.5]", "train"), ("[1.0, 0.0, 0.0]", "valid")])
def test_empty_hash_split_exits_1(tmp_path, capsys, ratios, empty):
    (tmp_path / "a.txt").write_text("\n".join(kaggle_rows(40)) + "\n")
    out = str(tmp_path / "out")
    code, _, err = prepare(capsys, "--input", str(tmp_path / "a.txt"), "--out", out, "--set",
                           f"prepare.split_ratios={ratios}")
    assert_one_line(err, 1, code, f"the {empty} split is empty", "prepare.split_ratios")
    assert _stats(out)["rows_written"][empty] == 0


def test_empty_valid_file_exits_1_aliexpress(tmp_path, capsys):
    train = write(tmp_path / "train.csv", [aliexpress_row(i) for i in range(1, 6)], ALIEXPRESS_HEADER)
    valid = write(tmp_path / "valid.csv", [], ALIEXPRESS_HEADER)
    code, _, err = prepare(capsys, "--train", train, "--valid", valid, "--out", str(tmp_path / "out"), "--format",
                           "aliexpress")
    assert_one_line(err, 1, code, "the valid split is empty", "--valid")


def test_train_on_an_empty_train_split_says_so(tmp_path, capsys):
    (tmp_path / "a.txt").write_text("\n".join(kaggle_rows(40)) + "\n")
    data = str(tmp_path / "data")
    code, _, _ = prepare(capsys, "--input", str(tmp_path / "a.txt"), "--out", data, "--set",
                         "prepare.split_ratios=[0.0, 0.5, 0.5]")
    assert code == 1
    code = main(["train", "--data", data, "--model-dir", str(tmp_path / "m"), "--set", "data.batch_size=2",
                 "--set", "data.eval_batch_size=2"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and err == [f"tfrec train: error: the train split of {data} is empty (4 shard file(s), no row); "
                                 "prepare it again with train rows"], err


def test_train_without_model_dir_is_a_usage_error(tmp_path, capsys):
    code = main(["train", "--data", str(tmp_path)])
    assert code == 2 and "no model directory given" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ pre-split files


@pytest.mark.parametrize("given, needle", [
    (("--train", "--test"), "--train without --valid"),
    (("--train",), "--train without --valid"),
    (("--valid", "--test"), "without train files"),
])
def test_pre_split_files_need_train_and_valid(tmp_path, capsys, given, needle):
    args = []
    for i, flag in enumerate(given):
        path = tmp_path / f"f{i}.txt"
        path.write_text("\n".join(kaggle_rows(5, seed=i)) + "\n")
        args += [flag, str(path)]
    out = tmp_path / "out"
    code, _, err = prepare(capsys, *args, "--out", str(out))
    assert_one_line(err, 2, code, needle)
    assert not out.exists()  # stopped before anything ran


def test_same_file_for_valid_and_test_is_a_usage_error(tmp_path, capsys, monkeypatch):
    for name in ("train.txt", "both.txt"):
        (tmp_path / name).write_text("\n".join(kaggle_rows(5)) + "\n")
    monkeypatch.chdir(tmp_path)
    code, _, err = prepare(capsys, "--train", "train.txt", "--valid", "both.txt", "--test", "./both.txt",
                           "--out", "out")
    assert_one_line(err, 2, code, "both.txt is listed for both valid and test")
    assert not (tmp_path / "out" / "stats.json").exists()


# ------------------------------------------------------------------------------------ unusable inputs


@pytest.mark.parametrize("name, mode", [("dac.tar.gz", "w:gz"), ("dac.tgz", "w:gz"), ("dac.tar", "w"),
                                        ("train.txt.gz", "w:gz")])  # the last one: a tar.gz that hides its kind
def test_archives_are_refused(tmp_path, capsys, name, mode):
    member = tmp_path / "train.txt"
    member.write_text("\n".join(kaggle_rows(50)) + "\n")
    with tarfile.open(tmp_path / name, mode) as t:
        t.add(str(member), arcname="train.txt")
    out = tmp_path / "out"
    code, _, err = prepare(capsys, "--input", str(tmp_path / name), "--out", str(out))
    assert_one_line(err, 2, code, name, "is an archive; extract it first")
    assert not (out / "stats.json").exists()


def test_archive_refused_for_multitask_formats(tmp_path, capsys):
    csv = write(tmp_path / "ali.csv", [aliexpress_row(i) for i in range(1, 4)], ALIEXPRESS_HEADER)
    with tarfile.open(tmp_path / "ali.tar.gz", "w:gz") as t:
        t.add(csv, arcname="ali.csv")
    code, _, err = prepare(capsys, "--input", str(tmp_path / "ali.tar.gz"), "--out", str(tmp_path / "out"),
                           "--format", "aliexpress")
    assert_one_line(err, 2, code, "extract it first")


def test_directory_as_input_is_a_usage_error(tmp_path, capsys):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "train.txt").write_text("\n".join(kaggle_rows(5)) + "\n")
    code, _, err = prepare(capsys, "--input", str(tmp_path / "raw"), "--out", str(tmp_path / "out"))
    assert_one_line(err, 2, code, "is a directory", os.path.join(str(tmp_path / "raw"), "*.txt"))
    assert "Errno" not in err[0]


def test_output_that_cannot_be_a_directory_is_a_usage_error(tmp_path, capsys):
    (tmp_path / "a.txt").write_text("\n".join(kaggle_rows(5)) + "\n")
    code, _, err = prepare(capsys, "--input", str(tmp_path / "a.txt"), "--out", str(tmp_path / "a.txt" / "out"))
    assert_one_line(err, 2, code, "cannot be created", "is not a directory")


def test_kaggle_tsv_with_a_utf8_bom_loses_no_row(tmp_path, capsys):
    rows = kaggle_rows(20)
    with open(tmp_path / "train.txt", "w", encoding="utf-8") as f:
        f.write("\ufeff" + "\n".join(rows[:10]) + "\n")
    (tmp_path / "valid.txt").write_text("\n".join(rows[10:]) + "\n")
    out = str(tmp_path / "out")
    code, _, err = prepare(capsys, "--train", str(tmp_path / "train.txt"), "--valid", str(tmp_path / "valid.txt"),
                           "--out", out)
    assert code == 0, err
    stats = _stats(out)
    assert stats["rows_rejected"] == 0 and stats["rows_written"]["train"] == 10
    with gzip.open(tmp_path / "bom.txt.gz", "wt", encoding="utf-8") as f:  # compressed: the same
        f.write("\ufeff" + "\n".join(rows[:10]) + "\n")
    code, _, err = prepare(capsys, "--train", str(tmp_path / "bom.txt.gz"), "--valid", str(tmp_path / "valid.txt"),
                           "--out", out)
    assert code == 0 and _stats(out)["rows_rejected"] == 0, err


@pytest.mark.parametrize("fmt", ["auto", "x1", "kaggle"])
def test_csv_whose_header_names_no_criteo_column(tmp_path, capsys, fmt):
    path = write(tmp_path / "other.csv", ["1,0,5,6", "0,0,7,8"], "click,purchase,101,121")
    code, _, err = prepare(capsys, "--input", path, "--out", str(tmp_path / "out"), "--format", fmt)
    assert_one_line(err, 2, code, "other.csv", "names none of the Criteo columns", "--format aliexpress")


@pytest.mark.parametrize("fmt", ["auto", "x1"])
def test_x1_header_that_does_not_match_is_an_error(tmp_path, capsys, fmt):
    path = write(tmp_path / "x.csv", x1_rows(20), X1_HEADER.replace("label,", "click,"))
    code, _, err = prepare(capsys, "--input", path, "--out", str(tmp_path / "out"), "--format", fmt)
    assert_one_line(err, 2, code, "x.csv", "not criteo_x1's", "missing ['label'], unknown ['click']")
    reordered = write(tmp_path / "r.csv", x1_rows(20), X1_HEADER.replace("I1,I2", "I2,I1"))
    code, _, err = prepare(capsys, "--input", reordered, "--out", str(tmp_path / "out"), "--format", fmt)
    assert_one_line(err, 2, code, "r.csv", "in another order")


def test_headerless_x1_csv_is_read_as_x1(tmp_path, capsys):
    rows = x1_rows(60)
    path = write(tmp_path / "x.csv", rows)
    out = str(tmp_path / "out")
    code, _, err = prepare(capsys, "--input", path, "--out", out)
    assert code == 0, err
    stats = _stats(out)
    assert stats["input_formats"] == {path: "x1"} and stats["rows_rejected"] == 0
    assert sum(stats["rows_written"].values()) == 60


def test_x1_file_under_kaggle_format_is_an_error(tmp_path, capsys):
    path = write(tmp_path / "x.csv", x1_rows(5), X1_HEADER)
    code, _, err = prepare(capsys, "--input", path, "--out", str(tmp_path / "out"), "--format", "kaggle")
    assert_one_line(err, 2, code, "is a criteo_x1 CSV", "--format x1")


@pytest.mark.parametrize("header, needle", [
    (ALIEXPRESS_HEADER.replace("search_id", "sid"), "not the AliExpress header"),
    (",".join(f"col{i}" for i in range(82)), "names none of the AliExpress columns"),
])
def test_aliexpress_header_that_does_not_match_is_an_error(tmp_path, capsys, header, needle):
    path = write(tmp_path / "a.csv", [aliexpress_row(i) for i in range(1, 10)], header)
    out = tmp_path / "out"
    code, _, err = prepare(capsys, "--input", path, "--out", str(out), "--format", "aliexpress")
    assert_one_line(err, 2, code, "a.csv", needle)
    assert not (out / "deadletter").exists()  # no row was read by position


def test_tsv_under_a_multitask_format_is_an_error(tmp_path, capsys):
    (tmp_path / "k.txt").write_text("\n".join(kaggle_rows(5)) + "\n")
    for fmt in ("aliexpress", "aliccp"):
        code, _, err = prepare(capsys, "--input", str(tmp_path / "k.txt"), "--out", str(tmp_path / "out"),
                               "--format", fmt)
        assert_one_line(err, 2, code, "tab-separated, not a", "--format kaggle")
        assert len(err[0]) < 300, err[0]


# ------------------------------------------------------------------------------------ progress


def test_progress_lines_while_beam_runs_and_wall_time(tmp_path, capsys):
    (tmp_path / "a.txt").write_text("\n".join(kaggle_rows(3000)) + "\nnot a row\n")
    out = str(tmp_path / "out")
    code, stdout, err = prepare(capsys, "--input", str(tmp_path / "a.txt"), "--out", out, "--progress-every",
                                "0.05")
    assert code == 0, err
    counted = [tuple(int(n.replace(",", "")) for n in m.groups()) for m in
               re.finditer(r"^prepare: ([\d,]+) rows read \(([\d,]+) to the splits, ([\d,]+) rejected\), [\d,]+ "
                           r"rows/s, \d+ s$", stdout, re.M)]
    assert counted, stdout
    assert all(read == written + rejected for read, written, rejected in counted)
    assert counted[-1] == (3001, 3000, 1)  # all read before the pipeline's last steps finished
    assert re.search(rf"^prepared {re.escape(out)} in \d+\.\d s$", stdout, re.M), stdout


# ------------------------------------------------------------------------------------ the reader and the BOM


def _read_range(path, start, stop):
    from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker

    from pipelines.common.read import ReadLineChunks

    tracker = OffsetRestrictionTracker(OffsetRange(start, stop))
    out = [line for _, lines in ReadLineChunks().process(path, tracker) for line in lines]
    tracker.check_done()
    return out


@pytest.mark.parametrize("chunk_bytes", [2, 7, 1 << 20])
def test_reader_drops_a_leading_bom_and_splits_lose_and_repeat_nothing(tmp_path, monkeypatch, chunk_bytes):
    import pipelines.common.read as read

    monkeypatch.setattr(read, "CHUNK_BYTES", chunk_bytes)
    lines = [b"first", b"0\t1\t\xef\xbb\xbfinner BOM kept", b"", b"x" * 12, b"last"]
    data = read.BOM + b"\n".join(lines) + b"\n"
    path = str(tmp_path / "bom.txt")
    with open(path, "wb") as f:
        f.write(data)
    assert _read_range(path, 0, len(data)) == lines
    for cut in range(0, len(data) + 1):  # every split point: each line once, in order
        assert _read_range(path, 0, cut) + _read_range(path, cut, len(data)) == lines, cut
    only = str(tmp_path / "only.txt")
    with open(only, "wb") as f:
        f.write(read.BOM + b"no newline")
    assert _read_range(only, 0, 13) == [b"no newline"]
    with gzip.open(tmp_path / "bom.txt.gz", "wb") as f:
        f.write(data)
    assert _read_range(str(tmp_path / "bom.txt.gz"), 0, 1) == lines


def test_progress_counters_are_beam_metrics_for_runners_that_report_them(tmp_path):
    """What a remote runner reports while it runs: the parse step's counters as Beam metrics (namespace tfrec),
    which ProgressReporter reads from the run's result."""
    import apache_beam as beam
    from apache_beam.metrics.metric import MetricsFilter

    import pipelines.criteo as criteo
    from pipelines.criteo.stages import ProgressReporter
    from tfrec.config import PrepareConfig

    (tmp_path / "a.txt").write_text("\n".join(kaggle_rows(300)) + "\nbad row\n\n")
    cfg = PrepareConfig(inputs=[str(tmp_path / "a.txt")], output=str(tmp_path / "out"), num_shards=1)
    p = beam.Pipeline(options=criteo.pipeline_options(cfg))
    criteo.build(p, cfg, criteo.plan_inputs(cfg))
    result = p.run()
    result.wait_until_finish()
    counters = {c.key.metric.name: c.committed
                for c in result.metrics().query(MetricsFilter().with_namespace("tfrec"))["counters"]}
    assert counters == {"rows_written": 300, "rows_rejected": 2}

    class Remote:  # a runner's result while the pipeline runs elsewhere: only its metrics tell the progress
        def metrics(self):
            return result.metrics()

    reporter = ProgressReporter(lambda line: None, 60, "prepare")
    assert reporter.line().startswith("prepare: running, ")  # nothing counted since it started
    reporter.result = Remote()
    assert reporter.counts() == (300, 2)
    assert reporter.line().startswith("prepare: 302 rows read (300 to the splits, 2 rejected), ")
