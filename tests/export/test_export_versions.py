"""Export versions: 1, 2, 3 in order, published atomically (a polling reader never sees a partial version),
never overwritten, racing exporters land on distinct versions; `tfrec export` on a trained run, and its errors."""

import math
import os
import threading
import time

import numpy as np
import pytest
import tensorflow as tf

import export
from export import versions
from export.signatures import schema_of
from tfrec.cli import main
from tfrec.config import load_config
from tfrec.features import CRITEO
from tfrec.models import SingleTask

FEATS = dict(dense=["d0"], categorical=["c0"], vocabularies={"c0": ["a", "b"]},
             transform={"kind": "log_minmax", "scale": {"d0": 3.0}}, embedding_dim=2, tower_units=[])


def _complete(path):
    return (os.path.isfile(os.path.join(path, "saved_model.pb"))
            and os.path.isfile(os.path.join(path, "variables", "variables.index"))
            and os.path.isfile(os.path.join(path, "assets.extra", "tf_serving_warmup_requests")))


class _Reader(threading.Thread):
    """Polls the base path as TF Serving does (only all-digit names) and records every incomplete version."""

    def __init__(self, base):
        super().__init__(daemon=True)
        self.base, self.stop, self.seen, self.partial, self.polls = base, threading.Event(), set(), [], 0

    def run(self):
        while True:
            stopping = self.stop.is_set()  # one more poll after the stop, so the last version is seen
            if os.path.isdir(self.base):
                for name in os.listdir(self.base):
                    if versions.is_version_name(name):
                        self.seen.add(int(name))
                        if not _complete(os.path.join(self.base, name)):
                            self.partial.append(name)
            self.polls += 1
            if stopping:
                return


def test_versions_are_sequential_atomic_and_never_overwritten(tmp_path):
    model = SingleTask(**FEATS, task="ctr")
    model.build_from_config(None)
    base = str(tmp_path / "model")
    reader = _Reader(base)
    reader.start()
    try:
        results = [export.export_model(model, base, rows=[{"d0": i, "c0": "a"}]) for i in range(3)]
    finally:
        reader.stop.set()
        reader.join()
    assert [r.version for r in results] == [1, 2, 3]
    assert export.list_versions(base) == [1, 2, 3] and sorted(os.listdir(base)) == ["1", "2", "3"]
    assert reader.partial == [] and reader.seen == {1, 2, 3} and reader.polls > 10
    # each version keeps its own warmup rows: nothing was overwritten
    for i, r in enumerate(results):
        served = export.read_records(os.path.join(r.path, "assets.extra", "tf_serving_warmup_requests"))[0]
        assert served.predict_log.request.inputs["examples"].string_val[0] == r.examples[0]
        assert r.examples[0] == export.serialize_rows([{"d0": i, "c0": "a"}], schema_of(model))[0]


def test_the_reader_does_catch_a_version_written_in_place(tmp_path):
    """The control of the test above: writing straight into a version directory is seen half-written."""
    base = str(tmp_path / "m")
    reader = _Reader(base)
    reader.start()
    try:
        path = os.path.join(base, "1")
        os.makedirs(os.path.join(path, "variables"))
        open(os.path.join(path, "saved_model.pb"), "w").write("x")
        time.sleep(0.2)
        open(os.path.join(path, "variables", "variables.index"), "w").write("x")
    finally:
        reader.stop.set()
        reader.join()
    assert "1" in reader.partial


def _staged(base, marker):
    path = versions.staging_dir(base)
    os.makedirs(os.path.join(path, "variables"))
    with open(os.path.join(path, "saved_model.pb"), "w") as f:
        f.write(marker)
    return path


def test_racing_publishers_land_on_distinct_versions(tmp_path, monkeypatch):
    base = str(tmp_path / "m")
    staged = [_staged(base, f"export {i}") for i in range(8)]
    landed, barrier = [], threading.Barrier(len(staged))

    def go(path):
        barrier.wait()
        landed.append(versions.publish(path, base))

    threads = [threading.Thread(target=go, args=(p,)) for p in staged]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(landed) == list(range(1, 9))
    markers = {open(os.path.join(base, str(v), "saved_model.pb")).read() for v in landed}
    assert markers == {f"export {i}" for i in range(8)}  # every export survived, none replaced another
    # a stale listing (another exporter published 9 meanwhile) moves on to 10 instead of replacing 9
    late = _staged(base, "late")
    os.makedirs(os.path.join(base, "9"))
    open(os.path.join(base, "9", "saved_model.pb"), "w").write("winner")
    real, stale = versions.list_versions, iter([list(range(1, 9))])
    monkeypatch.setattr(versions, "list_versions", lambda b: next(stale, None) or real(b))
    assert versions.publish(late, base) == 10
    assert open(os.path.join(base, "9", "saved_model.pb")).read() == "winner"
    assert [n for n in os.listdir(base) if n.startswith(versions.STAGING_PREFIX)] == []


def test_version_names_as_tf_serving_reads_them():
    assert versions.is_version_name("12") and not versions.is_version_name(".tmp-12")
    assert not versions.is_version_name("1a") and not versions.is_version_name("") \
        and not versions.is_version_name("١")  # a non-ASCII digit


def test_failed_export_leaves_no_version_and_no_staging(tmp_path):
    model = SingleTask(**FEATS, task="ctr")
    model.build_from_config(None)
    base = tmp_path / "m"
    with pytest.raises(ValueError, match="must be a number"):
        export.export_model(model, str(base), rows=[{"d0": "x"}])
    with pytest.raises(ValueError, match="warmup_rows"):
        export.export_model(model, str(base), warmup_rows=0)
    assert not base.exists() or os.listdir(base) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="export base path is not a directory"):
        export.export_model(model, str(tmp_path / "file"))


# ---------------------------------------------------------------------------------------------- CLI


def test_cli_export_with_validate(tiny_dataset, tmp_path, capsys):
    from tfrec.train import best_weights_path, build_model

    # A finished run's model directory: the best weights where `tfrec train` writes them.
    small = ["model.dnn_hidden_units=[8]", "model.num_cross_layers=1", "model.embedding_dim=4"]
    model_dir = str(tmp_path / "run")
    model = build_model(load_config(None, [f"data.dir={tiny_dataset}", *small]))
    model.build_from_config(None)
    rng = np.random.default_rng(2)
    model.set_weights([rng.normal(scale=0.5, size=w.shape).astype(w.dtype) for w in model.get_weights()])
    model.save_weights(best_weights_path(model_dir))
    base = str(tmp_path / "serving" / "ctr")
    argv = ["export", "--data", tiny_dataset, "--model-dir", model_dir, "--base-path", base, "--validate",
            "--warmup-rows", "4", *[a for s in small for a in ("--set", s)]]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"exported version 1 to {os.path.join(base, '1')}" in out and "validation of" in out
    assert "PASSED" in out and "FAIL" not in out
    assert main([a for a in argv if a != "--validate"]) == 0
    assert export.list_versions(base) == [1, 2]
    capsys.readouterr()
    # the export carries the run's weights: the served probabilities are this model's
    rows = [{"I1": 5, "C1": "00000003"}, {"I2": 100, "C3": "00000001", "C9": "ffffffff"}]
    served = tf.saved_model.load(os.path.join(base, "2")).signatures["serving_default"](
        examples=tf.constant(export.serialize_rows(rows, CRITEO)))["ctr"].numpy()
    # The Keras model's inputs by the documented conventions (missing dense NaN, categorical ""), not the parser.
    features = {d: tf.constant([float(r[d]) if d in r else math.nan for r in rows], tf.float32) for d in CRITEO.dense}
    features.update({c: tf.constant([str(r.get(c, "")) for r in rows], tf.string) for c in CRITEO.categorical})
    np.testing.assert_allclose(served, model(features, training=False)["probability"].numpy(), atol=1e-6)


@pytest.mark.parametrize("args, needle", [
    (["--model-dir", "/nonexistent/run", "--base-path", "/tmp/b"], "model directory not found: /nonexistent/run"),
    (["--base-path", "/tmp/b"], "no model directory given"),
    (["--model-dir", "{tmp}"], "no export base path given"),
    (["--model-dir", "{tmp}", "--base-path", "{tmp}/file"], "export base path is not a directory"),
    (["--model-dir", "{tmp}", "--base-path", "{tmp}/b"], "no trained weights at"),
    (["--model-dir", "{tmp}", "--base-path", "{tmp}/b", "--warmup-rows", "0"], "--warmup-rows must be >= 1"),
])
def test_cli_bad_inputs_are_one_line(tiny_dataset, tmp_path, capsys, args, needle):
    (tmp_path / "file").write_text("x")
    argv = ["export", "--data", tiny_dataset] + [a.format(tmp=tmp_path) for a in args]
    assert main(argv) == 2
    err = [l for l in capsys.readouterr().err.splitlines() if l.strip()]
    assert len(err) == 1 and err[0].startswith("tfrec export: error:") and needle in err[0], err
    assert not (tmp_path / "b").exists() or os.listdir(tmp_path / "b") == []


def test_cli_export_help_lists_flags(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["export", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--base-path" in out and "--validate" in out
