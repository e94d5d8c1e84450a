"""Worker threads that run calls for the server's event loop, the most recently idle thread first.

``await workers.run(fn, *args)`` runs ``fn(*args)`` on a worker thread and resumes the coroutine with its result.
Two differences from ``loop.run_in_executor(ThreadPoolExecutor)``, both for the fixed cost of a small call
(``bench/bench_serving.py`` times the hand-off):

* one ``call_soon_threadsafe`` back to the loop, without the two chained futures of ``run_in_executor``;
* the thread that became idle last takes the next call. A ``ThreadPoolExecutor``'s idle threads all wait on one
  queue: once a burst has started several of them, calls made one at a time land on each thread in turn (40
  calls on 8 threads after a burst of 8), and each finds TensorFlow's per-thread state and the CPU's caches cold;
  here consecutive calls run on the same thread.

Example::

    workers = Workers(16)
    out = await workers.run(answer, request_bytes)   # inside a coroutine on the loop
    workers.shutdown()
"""

from __future__ import annotations

import asyncio
import collections
import threading
from typing import Callable, List

_WAIT = object()


class _Slot:
    """An idle worker's mailbox: ``job`` is set, then ``wake`` released."""

    __slots__ = ("wake", "job")

    def __init__(self):
        self.wake = threading.Lock()
        self.wake.acquire()
        self.job = None


class Workers:
    """``count`` daemon threads running submitted jobs, the most recently idle one first.

    Args:
      count: number of threads (calls that run at once; more wait in order of arrival).
      name: prefix of the threads' names.
    """

    def __init__(self, count: int, name: str = "tfrec-serving"):
        if count < 1:
            raise ValueError(f"`count` must be >= 1. Received: count={count}")
        self._lock = threading.Lock()
        self._idle: List[_Slot] = []
        self._backlog: collections.deque = collections.deque()
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True) for i in range(count)]
        for t in self._threads:
            t.start()

    def submit(self, job: Callable[[], None]) -> None:
        """Runs ``job()`` on the most recently idle thread, or after the jobs before it when all are busy."""
        with self._lock:
            if self._idle:
                slot = self._idle.pop()
                slot.job = job
                slot.wake.release()
            else:
                self._backlog.append(job)

    def _work(self) -> None:
        slot = _Slot()
        while True:
            with self._lock:
                if self._backlog:
                    job = self._backlog.popleft()
                else:
                    self._idle.append(slot)
                    job = _WAIT
            if job is _WAIT:
                slot.wake.acquire()
                job, slot.job = slot.job, None
            if job is None:
                return
            job()

    def run(self, fn: Callable, *args) -> "asyncio.Future":
        """A future of the running event loop that gets ``fn(*args)`` (which must not raise)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()

        def job():
            out = fn(*args)
            try:
                loop.call_soon_threadsafe(_resolve, future, out)
            except RuntimeError:  # the loop is closed: the server stopped past its grace period
                pass

        self.submit(job)
        return future

    def shutdown(self) -> None:
        """Lets the submitted jobs finish, then ends the threads."""
        for _ in self._threads:
            self.submit(None)
        for t in self._threads:
            t.join()


def _resolve(future: "asyncio.Future", out) -> None:
    if not future.cancelled():  # the call was cancelled (deadline, client gone) while it ran
        future.set_result(out)
