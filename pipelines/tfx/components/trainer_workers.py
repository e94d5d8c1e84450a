"""Local multi-worker training: the Trainer's ``run_fn`` in ``pipeline.workers`` processes on loopback ports.

Each process gets a ``TF_CONFIG`` naming all of them (``cluster.worker`` = ``127.0.0.1:<free port>``, its own
``task.index``), so :func:`tfrec.devices.make_strategy` builds a ``MultiWorkerMirroredStrategy`` and every worker
reads its shard of the global batch; worker 0 is the chief and the only one whose export is kept (the others
write to temporary directories, :func:`tfrec.devices.worker_dir`). This is the same code path a cluster
scheduler drives when it starts one Trainer per machine with its own ``TF_CONFIG``.

``python -m pipelines.tfx.components.trainer_workers FN_ARGS_JSON MODULE_FILE`` is one worker.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import time
from typing import List, Sequence

from pipelines.tfx.components import ComponentError, write_json


def free_ports(n: int) -> List[int]:
    """``n`` distinct free TCP ports on 127.0.0.1 (bound together, then released)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def tf_configs(ports: Sequence[int]) -> List[dict]:
    """One ``TF_CONFIG`` per worker of a loopback cluster."""
    workers = [f"127.0.0.1:{p}" for p in ports]
    return [{"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}} for i in range(len(workers))]


def _tail(path: str, lines: int = 1) -> str:
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as f:
            text = [l.strip() for l in f.read().splitlines() if l.strip()]
    except OSError:
        return ""
    return " | ".join(text[-lines:])


def _stop(procs, grace_s: float = 10.0) -> None:
    """SIGTERM to the workers still running, SIGKILL to those still running ``grace_s`` later.

    The grace is short and shared: under MultiWorkerMirroredStrategy TensorFlow's preemption notifier catches
    SIGTERM, so a worker stuck in a collective does not exit on it.
    """
    for p in procs:
        if p.poll() is None:
            p.terminate()
    end = time.monotonic() + grace_s
    for p in procs:
        try:
            p.wait(timeout=max(0.0, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def run_workers(fn_args, module_file: str, workers: int, output_dir: str, timeout_s: float = 0.0,
                printer=print) -> None:
    """Runs ``run_fn(fn_args)`` of ``module_file`` in ``workers`` processes and waits for all of them.

    Each worker's output goes to ``<output_dir>/worker-<i>.log``. When one fails, the others are stopped (a
    collective would wait for it forever).

    Raises:
      ComponentError: a worker exited with a non-zero status, or ``timeout_s`` (> 0) passed.
    """
    if workers < 2:
        raise ValueError(f"`workers` must be >= 2. Received: workers={workers}")
    os.makedirs(output_dir, exist_ok=True)
    args_path = os.path.join(output_dir, "fn_args.json")
    write_json(args_path, dataclasses.asdict(fn_args))
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    procs, logs = [], []
    for i, tf_config in enumerate(tf_configs(free_ports(workers))):
        log = os.path.join(output_dir, f"worker-{i}.log")
        logs.append(log)
        with open(log, "w", encoding="utf-8") as out:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "pipelines.tfx.components.trainer_workers", args_path, module_file],
                stdout=out, stderr=subprocess.STDOUT, env={**env, "TF_CONFIG": json.dumps(tf_config)}))
    printer(f"trainer: {workers} workers on loopback (logs {output_dir}/worker-*.log)")
    deadline = time.monotonic() + timeout_s if timeout_s > 0 else None
    failed = None
    try:
        while any(p.poll() is None for p in procs):
            failed = next((i for i, p in enumerate(procs) if p.returncode not in (None, 0)), None)
            if failed is not None:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise ComponentError(f"trainer workers did not finish within {timeout_s:.0f} s; logs: {output_dir}")
            time.sleep(0.2)
        if failed is None:
            failed = next((i for i, p in enumerate(procs) if p.returncode != 0), None)
    finally:
        _stop(procs)
    if failed is not None:
        raise ComponentError(f"trainer worker {failed} exited with status {procs[failed].returncode}: "
                             f"{_tail(logs[failed]) or 'no output'} (log: {logs[failed]})")


def main(argv: Sequence[str]) -> int:
    """One worker: ``argv = [FN_ARGS_JSON, MODULE_FILE]``."""
    from tfrec import devices

    # MultiWorkerMirroredStrategy must be the process's first TensorFlow work (tfrec.train builds it again
    # from the same TF_CONFIG; the collective runtime is set up once, here).
    devices.make_strategy(1)
    from pipelines.tfx.components.module_file import load_module
    from tfrec.trainer_module import FnArgs

    with open(argv[0], "r", encoding="utf-8") as f:
        fn_args = FnArgs(**json.load(f))
    load_module(argv[1]).run_fn(fn_args)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
