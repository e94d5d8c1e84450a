"""The three pipelines on Beam's PortableRunner (the Fn API path of Flink and Spark): an embedded job service and an
EXTERNAL worker pool started here on 127.0.0.1, stopped after. The outputs equal the DirectRunner's: records per
split as multisets, stats.json, vocabularies and every side file byte for byte."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.support.pipeline_outputs import differences, snapshot
from tfrec.config import CascadeConfig, HybridSamplesConfig, PrepareConfig, SimulationConfig

POOL_START_S = 60


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def worker_pool():
    """``python -m apache_beam.runners.worker.worker_pool_main`` on a free port; it starts SDK workers with the
    ``python`` on PATH, so this environment's comes first."""
    port = _free_port()
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    pool = subprocess.Popen([sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main",
                             f"--service_port={port}"], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + POOL_START_S
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if pool.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the worker pool did not start on port {port} (exit code {pool.poll()})")
                time.sleep(0.2)
        yield ["--job_endpoint=embed", "--environment_type=EXTERNAL", f"--environment_config=127.0.0.1:{port}"]
    finally:
        os.killpg(pool.pid, signal.SIGTERM)  # the pool and the workers it started (its own process group)
        try:
            pool.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(pool.pid, signal.SIGKILL)
            pool.wait()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    from tfrec.simulation import simulate
    from tfrec.simulation.cascade import simulate_cascade
    from tfrec.simulation.funnel import simulate_funnel

    root = tmp_path_factory.mktemp("portable")
    criteo = str(root / "train.txt")
    simulate(SimulationConfig(rows=3000, output=criteo))
    with open(criteo, "a") as f:
        f.write("2\t1\n\n" + "1" + "\tzz" * 39 + "\n")
    funnel = str(root / "funnel.csv")
    simulate_funnel(SimulationConfig(rows=2000, output=funnel, kind="funnel"))
    with open(funnel, "a") as f:
        f.write("1,2,3\n")
    logs = str(root / "logs")
    simulate_cascade(CascadeConfig(output=logs, requests=80, users=20, items=400, categories=6, retrieved=60,
                                   ranked=30, seed=4))
    with open(os.path.join(logs, "requests.jsonl"), "a") as f:
        f.write("not json\n")
    return {"root": root, "criteo": criteo, "funnel": funnel, "logs": logs}


def _run(name, inputs, out, runner, beam_args):
    from pipelines import criteo, hybrid_samples, multitask

    if name == "criteo":
        return criteo.run(PrepareConfig(inputs=[inputs["criteo"]], output=out, beta_pos=0.5, min_count=2,
                                        num_shards=2, runner=runner, beam_args=beam_args))
    if name == "multitask":
        return multitask.run(PrepareConfig(inputs=[inputs["funnel"]], input_format="aliexpress", output=out,
                                           beta_pos=0.3, min_count=3, num_shards=2, runner=runner,
                                           beam_args=beam_args))
    logs = inputs["logs"]
    return hybrid_samples.run(HybridSamplesConfig(
        inputs=[os.path.join(logs, "requests.jsonl")], items=[os.path.join(logs, "items.jsonl")], output=out,
        chunk_boundaries=[5, 10, 20], chunk_rates=[0.5, 0.3, 0.2, 0.1], full_eval_lists=True, num_shards=2,
        runner=runner, beam_args=beam_args))


@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", ["criteo", "multitask", "hybrid"])
def test_portable_runner_outputs_equal_the_direct_runners(name, inputs, worker_pool):
    direct_out, portable_out = str(inputs["root"] / name / "direct"), str(inputs["root"] / name / "portable")
    direct = _run(name, inputs, direct_out, "DirectRunner", [])
    portable = _run(name, inputs, portable_out, "PortableRunner", worker_pool)
    drop = ("config",)  # hybrid's stats.json repeats its config: the output directory and the runner differ
    assert {k: v for k, v in portable.items() if k not in drop} == {k: v for k, v in direct.items() if k not in drop}
    a, b = snapshot(direct_out, drop), snapshot(portable_out, drop)
    assert not differences(a, b)
    assert sum(len(v) for k, v in a.items() if k.startswith("records of")) > 0
    assert any(k.startswith("vocab/") for k in a) or name == "hybrid"


@pytest.mark.timeout(600)
def test_portable_runner_in_loopback_mode_equals_the_direct_runner(inputs):
    """``--job_endpoint=embed --environment_type=LOOPBACK``: the job service and the SDK worker in this process,
    over the Fn API as with EXTERNAL workers; the Criteo outputs equal the DirectRunner's."""
    root = inputs["root"] / "loopback"
    direct_out, portable_out = str(root / "direct"), str(root / "portable")
    direct = _run("criteo", inputs, direct_out, "DirectRunner", [])
    portable = _run("criteo", inputs, portable_out, "PortableRunner",
                    ["--job_endpoint=embed", "--environment_type=LOOPBACK"])
    assert portable == direct
    assert not differences(snapshot(direct_out), snapshot(portable_out))
    assert sum(portable["rows_written"].values()) > 0
