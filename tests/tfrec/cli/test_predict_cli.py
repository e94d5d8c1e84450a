"""`tfrec predict` against a running `tfrec serve` on a DCN V2 export, with the inputs users have: raw Criteo
Kaggle rows (no header, 37 to 40 fields, exactly what `prepare` accepts), gzipped or not, a TSV with a header of
feature names, TFRecords; every answer equals the in-process Keras model on the same rows. A first line that
names no feature is refused, a row `prepare` would reject stops the run with its line number, and `--limit`
stops the reading (a bad line after the limit is never read)."""

import gzip
import math
import os

import numpy as np
import pytest
import tensorflow as tf

import export
from tests.support.serving_models import start_serve
from tfrec.cli import main
from tfrec.config import load_config
from tfrec.features import CRITEO, CRITEO_CATEGORICAL, CRITEO_DENSE
from tfrec.train import build_model

SMALL = ["model.dnn_hidden_units=[8]", "model.num_cross_layers=1", "model.embedding_dim=4"]


def _kaggle_rows(strip=True):
    """Raw train.txt lines: label, I1..I13, C1..C26; missing values empty; with ``strip``, two of them with their
    trailing empty fields stripped (37 and 39 fields)."""
    rng = np.random.default_rng(5)
    lines = []
    for i in range(7):
        dense = [str(int(rng.integers(-2, 500))) if rng.random() < 0.8 else "" for _ in CRITEO_DENSE]
        cats = [f"{int(rng.integers(0, 10)):08x}" if rng.random() < 0.85 else "" for _ in CRITEO_CATEGORICAL]
        fields = [str(i % 2), *dense, *cats]
        if strip and i in (2, 5):  # copies that strip trailing empty fields: 37 and 39 fields
            fields[-3:] = [""] * 3
            fields = fields[:37] if i == 2 else fields[:39]
        lines.append("\t".join(fields))
    lines.append("\t".join(["0"] + [""] * 39))  # every feature missing
    return lines


def _features(lines):
    """The model's raw inputs of the lines, read by hand: a missing dense value is NaN, a missing categorical "" ."""
    cols = [(line.split("\t") + [""] * 40)[:40] for line in lines]
    out = {d: tf.constant([float(c[1 + j]) if c[1 + j] else math.nan for c in cols], tf.float32)
           for j, d in enumerate(CRITEO_DENSE)}
    out.update({name: tf.constant([c[14 + j] for c in cols]) for j, name in enumerate(CRITEO_CATEGORICAL)})
    return out


@pytest.fixture(scope="module")
def served(tiny_dataset, tmp_path_factory):
    """A DCN V2 export served by `tfrec serve` in its own process; yields (Keras model, address)."""
    model = build_model(load_config(None, [f"data.dir={tiny_dataset}", *SMALL]))
    model.build_from_config(None)
    rng = np.random.default_rng(9)  # off the tiny initial weights, so rows give different answers
    model.set_weights([rng.normal(scale=0.5, size=w.shape).astype(w.dtype) for w in model.get_weights()])
    base = str(tmp_path_factory.mktemp("predict") / "ctr")
    export.export_model(model, base, CRITEO, data_dir=tiny_dataset, model_name="ctr", warmup_rows=4)
    proc, line = start_serve(base, "--poll-seconds", "0")
    try:
        assert line.startswith("serving ctr (versions [1]) on 127.0.0.1:"), line + proc.stderr.read()
        yield model, line.split(" on ")[1].strip()
    finally:
        proc.terminate()
        proc.communicate(timeout=60)


def _predict(address, path, capsys, *extra):
    capsys.readouterr()
    code = main(["predict", "--server", address, "--model", "ctr", "--input", str(path), *extra])
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    return code, lines, [l for l in captured.err.splitlines() if l.strip()]


def _probabilities(lines):
    assert lines[0].split("\t") == ["row", "ctr", "ctr_logit"]
    assert [int(l.split("\t")[0]) for l in lines[1:]] == list(range(len(lines) - 1))
    return np.array([float(l.split("\t")[1]) for l in lines[1:]])


@pytest.mark.parametrize("name, strip", [("train.txt", False), ("train.txt", True), ("train.txt.gz", True),
                                         ("rows.gz", True)])
def test_raw_criteo_rows_without_header_are_all_predicted(served, tmp_path, capsys, name, strip):
    model, address = served
    lines = _kaggle_rows(strip)
    assert {len(l.split("\t")) for l in lines} == ({37, 39, 40} if strip else {40})
    text = ("\n".join(lines) + "\n").encode()
    path = tmp_path / name
    path.write_bytes(gzip.compress(text) if name.endswith(".gz") else text)
    code, out, err = _predict(address, path, capsys)
    assert code == 0, err
    got = _probabilities(out)
    want = model(_features(lines), training=False)["probability"].numpy()
    assert len(got) == len(lines)  # the first row is a row, not a header
    assert len(set(np.round(want, 6))) > 4  # the rows really differ
    np.testing.assert_allclose(got, want, atol=2e-6)


def test_a_header_of_feature_names_gzipped_or_not(served, tmp_path, capsys):
    model, address = served
    names = ["I1", "I2", "I7", "C1", "C2", "C9"]
    rows = [["5", "-1", "", "00000003", "deadbeef", ""], ["", "100", "3", "00000001", "", "ffffffff"]]
    text = "\n".join("\t".join(r) for r in [names] + rows) + "\n"
    features = {d: tf.constant([float(r[names.index(d)]) if d in names and r[names.index(d)] else math.nan
                                for r in rows]) for d in CRITEO_DENSE}
    features.update({c: tf.constant([r[names.index(c)] if c in names else "" for r in rows])
                     for c in CRITEO_CATEGORICAL})
    want = model(features, training=False)["probability"].numpy()
    for path, data in ((tmp_path / "rows.tsv", text.encode()), (tmp_path / "rows.tsv.gz", gzip.compress(text.encode()))):
        path.write_bytes(data)
        code, out, err = _predict(address, path, capsys)
        assert code == 0, err
        np.testing.assert_allclose(_probabilities(out), want, atol=2e-6)


def test_tfrecords_by_name_or_by_content(served, tiny_dataset, tmp_path, capsys):
    model, address = served
    examples = export.warmup.dataset_examples(tiny_dataset, CRITEO, 5)
    want = model(export.SignatureSet(model, CRITEO).parse(tf.constant(examples)), training=False)["probability"]
    for name in ("ex.tfrecord.gz", "ex.gz"):
        with tf.io.TFRecordWriter(str(tmp_path / name), options="GZIP") as w:
            for e in examples:
                w.write(e)
        code, out, err = _predict(address, tmp_path / name, capsys)
        assert code == 0, err
        np.testing.assert_allclose(_probabilities(out), want.numpy(), atol=2e-6)


def test_a_first_line_that_names_no_feature_is_refused(served, tmp_path, capsys):
    _, address = served
    path = tmp_path / "other.tsv"
    path.write_text("user\titem\n1\t2\n")
    code, out, err = _predict(address, path, capsys)
    assert code == 2 and out == []
    assert len(err) == 1 and err[0].startswith(f"tfrec predict: error: {path} line 1 is not a header naming the "
                                               "model's features"), err
    assert "as a raw Criteo row: 2 tab-separated fields" in err[0]


def test_limit_stops_reading_and_a_rejected_row_names_its_line(served, tmp_path, capsys):
    model, address = served
    lines = _kaggle_rows()[:3]
    path = tmp_path / "train.txt"
    bad = "\t".join(["1"] + [""] * 13 + ["zz-not-hex"] + [""] * 25)  # prepare rejects it: bad_categorical
    path.write_text("\n".join(lines + [bad] + lines) + "\n")
    code, out, err = _predict(address, path, capsys, "--limit", "3")
    assert code == 0, err  # the bad line 4 is never read
    want = model(_features(lines), training=False)["probability"].numpy()
    np.testing.assert_allclose(_probabilities(out), want, atol=2e-6)
    code, out, err = _predict(address, path, capsys, "--batch-size", "2")
    assert code == 2
    assert err == [f"tfrec predict: error: {path} line 4: not a Criteo row tfrec prepare accepts (bad_categorical): "
                   "C1 is not hexadecimal: 'zz-not-hex'"]
    # Streamed: the batches before the bad line were answered and printed as they came.
    np.testing.assert_allclose(_probabilities(out), want[:2], atol=2e-6)


def test_bad_predict_arguments_are_one_line(served, tmp_path, capsys):
    _, address = served
    for args, needle in ((["--input", str(tmp_path / "none.tsv")], "input file not found"),
                         (["--input", str(tmp_path)], "is a directory"),
                         (["--input", str(tmp_path / "x.tsv"), "--limit", "0"], "--limit must be >= 1")):
        (tmp_path / "x.tsv").write_text("I1\n1\n")
        code, _, err = _predict(address, args[1], capsys, *args[2:])
        assert code == 2 and len(err) == 1 and needle in err[0], err
    empty = tmp_path / "empty.tsv"
    empty.write_text("")
    code, _, err = _predict(address, empty, capsys)
    assert code == 2 and err == [f"tfrec predict: error: no examples in {empty}"]
    assert os.path.exists(empty)
