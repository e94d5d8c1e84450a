"""MultiWorkerMirroredStrategy from TF_CONFIG: 2 worker processes on loopback == 1 worker, same global batch."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
from tests.support import ROOT

HERE = os.path.dirname(os.path.abspath(__file__))
HELPER = os.path.join(HERE, "multiworker_helper.py")


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _env(tf_config=None):
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return env


def test_two_workers_on_loopback_equal_one_worker_after_one_step(tmp_path):
    single = str(tmp_path / "single" / "weights.npz")
    one = subprocess.run([sys.executable, HELPER, single], env=_env(), capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]

    multi = str(tmp_path / "multi" / "weights.npz")
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    procs = [subprocess.Popen([sys.executable, HELPER, multi], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=_env({"cluster": {"worker": workers},
                                                   "task": {"type": "worker", "index": i}}))
             for i in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]

    a, b = np.load(single), np.load(multi)
    assert not bool(a["multi_worker"]) and int(a["replicas"]) == 1
    assert bool(b["multi_worker"]) and int(b["replicas"]) == 2
    np.testing.assert_allclose(b["kernel"], a["kernel"], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(b["bias"], a["bias"], rtol=1e-6, atol=1e-7)
    assert not np.allclose(a["kernel"], 0.3)  # the step moved the weights
    # Only the chief wrote to the real path; worker 1 wrote to its temporary directory.
    assert os.path.exists(os.path.join(tmp_path, "multi", ".worker-1-tmp", "weights.npz"))
