"""Runs one step of ``bench/bench_peers.py`` in a child process and measures it: wall time, the child's peak RSS
(``wait4``'s ``ru_maxrss``) and the peak proportional set size (PSS) of the child's whole process tree, sampled
from ``/proc`` (FuxiCTR's Ray Data runs in worker processes of its own; PSS counts pages shared between them,
such as Ray's object store, once).
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from typing import Dict, List, Optional


def _children() -> Dict[int, List[int]]:
    kids: Dict[int, List[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(name))
    return kids


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_pss_mb(root: int) -> float:
    """PSS of ``root`` and all its descendants, in MB."""
    kids, todo, total = _children(), [root], 0
    while todo:
        pid = todo.pop()
        total += _pss_kb(pid)
        todo.extend(kids.get(pid, []))
    return total / 1024.0


class _Sampler(threading.Thread):
    def __init__(self, pid: int, every: float):
        super().__init__(daemon=True)
        self.pid, self.every, self.peak = pid, every, 0.0
        self._stop_event = threading.Event()

    def run(self):
        while not self._stop_event.is_set():
            self.peak = max(self.peak, tree_pss_mb(self.pid))
            self._stop_event.wait(self.every)

    def stop(self):
        self._stop_event.set()
        self.join()


def run_measured(cmd: List[str], log_path: str, env: Optional[Dict[str, str]] = None, cwd: Optional[str] = None,
                 timeout: Optional[float] = None, sample_every: float = 0.5) -> Dict[str, object]:
    """Runs ``cmd`` with its output to ``log_path``; returns ``rc``, ``wall_seconds``, ``peak_rss_mb`` (the child's
    own maximum resident set) and ``peak_tree_pss_mb`` (sampled every ``sample_every`` s). A run past ``timeout``
    seconds is killed (``rc`` -9)."""
    os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
    with open(log_path, "wb") as log:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                start_new_session=True)
        sampler = _Sampler(proc.pid, sample_every)
        sampler.start()
        killer = None
        if timeout:
            killer = threading.Timer(timeout, lambda: _kill_group(proc.pid))
            killer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if killer is not None:
            killer.cancel()
        sampler.stop()
        _kill_group(proc.pid)  # what the child left behind (Ray's daemons) goes with it
    return {"rc": proc.returncode, "wall_seconds": wall, "peak_rss_mb": usage.ru_maxrss / 1024.0,
            "peak_tree_pss_mb": sampler.peak, "log": log_path}


def _kill_group(pgid: int) -> None:
    import signal

    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def log_tail(path: str, lines: int = 8) -> str:
    """The last ``lines`` non-empty lines of a log, for a failure's reason."""
    try:
        with open(path, "rb") as f:
            text = f.read()[-20000:].decode("utf-8", "replace")
    except OSError:
        return ""
    kept = [ln for ln in text.splitlines() if ln.strip()]
    return "\n".join(kept[-lines:])
