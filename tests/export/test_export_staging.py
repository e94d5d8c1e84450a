"""Staging directories of killed exports do not stay forever: the next export removes those whose exporter is gone
(its lock is free) and keeps those of an export still running (its lock is held); an unlocked one (left by a
tool without the lock) goes once it is a day old."""

import os
import signal
import subprocess
import sys
import time

import export
from export import versions
from tfrec.models import SingleTask
from tests.support import ROOT

FEATS = dict(dense=["d0"], categorical=["c0"], vocabularies={"c0": ["a", "b"]},
             transform={"kind": "log_minmax", "scale": {"d0": 3.0}}, embedding_dim=2, tower_units=[])

# An export that stages a directory, writes part of a SavedModel and then waits (to be killed, or to run on).
EXPORTER = """
import os, sys, time
from export import versions
staged = versions.staging_dir(sys.argv[1])
os.makedirs(os.path.join(staged, "variables"))
open(os.path.join(staged, "saved_model.pb"), "wb").write(b"half written")
print(staged, flush=True)
time.sleep(600)
"""


def _start_exporter(base):
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.Popen([sys.executable, "-c", EXPORTER, base], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    staged = proc.stdout.readline().strip()
    assert staged, proc.stderr.read() if proc.poll() is not None else "no staging directory printed"
    return proc, staged


def _staging_names(base):
    return sorted(n for n in os.listdir(base) if n.startswith(versions.STAGING_PREFIX))


def test_next_export_removes_a_killed_exports_staging_and_keeps_a_running_one(tmp_path):
    base = str(tmp_path / "m")
    killed, killed_dir = _start_exporter(base)
    running, running_dir = _start_exporter(base)
    try:
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=60)
        assert os.path.isdir(killed_dir)  # a kill leaves the half-written staging directory behind
        model = SingleTask(**FEATS, task="ctr")
        model.build_from_config(None)
        result = export.export_model(model, base)
        assert result.version == 1
        assert not os.path.exists(killed_dir) and not os.path.exists(killed_dir + versions.LOCK_SUFFIX)
        assert os.path.isdir(running_dir)  # the export still running keeps its directory
        assert _staging_names(base) == sorted(os.path.basename(p) for p in (running_dir,
                                                                            running_dir + versions.LOCK_SUFFIX))
    finally:
        running.kill()
        running.wait(timeout=60)
    # Once that exporter is gone too, the next staging removes its directory.
    assert versions.remove_stale_staging(base) == [os.path.basename(running_dir)]
    assert sorted(os.listdir(base)) == ["1"]


def test_unlocked_staging_goes_after_a_day_and_a_lone_free_lock_goes(tmp_path):
    base = tmp_path / "m"
    old, young = base / ".tmp-old", base / ".tmp-young"
    for d in (old, young):
        (d / "variables").mkdir(parents=True)
        (d / "saved_model.pb").write_bytes(b"x")
    day_ago = time.time() - versions.STALE_UNLOCKED_SECONDS - 60
    for p in (old, old / "variables", old / "saved_model.pb"):
        os.utime(p, (day_ago, day_ago))
    (base / ".tmp-gone.lock").write_text("host 1\n")  # its directory was published or removed
    staged = versions.staging_dir(str(base))
    assert sorted(os.listdir(base)) == sorted([".tmp-young", os.path.basename(staged) + versions.LOCK_SUFFIX])
    versions.remove_staging(staged)
    assert sorted(os.listdir(base)) == [".tmp-young"]
