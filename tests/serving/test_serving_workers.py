"""serving.workers: calls run on the most recently idle thread, in parallel up to the thread count, and a
shutdown lets the submitted calls finish."""

import asyncio
import threading
import time

import pytest

from serving.workers import Workers


def _wait(done, n, timeout=30):
    deadline = time.time() + timeout
    while len(done) < n and time.time() < deadline:
        time.sleep(0.001)
    assert len(done) == n, done


def test_one_call_at_a_time_stays_on_one_thread():
    workers = Workers(8)
    seen = []
    for _ in range(50):
        finished = threading.Event()
        workers.submit(lambda: (seen.append(threading.get_ident()), finished.set()))
        assert finished.wait(10)
        time.sleep(0.001)  # the thread goes back to waiting before the next call
    workers.shutdown()
    # A FIFO pool would hand the calls to its 8 threads in turn; here the last idle thread takes each one.
    assert len(set(seen[5:])) == 1, len(set(seen))


def test_calls_run_in_parallel_up_to_the_thread_count_then_wait_their_turn():
    workers = Workers(3)
    release, started, order = threading.Event(), [], []

    def job(i):
        started.append(i)
        release.wait(30)
        order.append(i)

    for i in range(5):
        workers.submit(lambda i=i: job(i))
    _wait(started, 3)
    time.sleep(0.05)
    assert sorted(started) == [0, 1, 2]  # 3 threads busy; 3 and 4 wait
    release.set()
    _wait(order, 5)
    assert started[3:] == [3, 4]  # the waiting calls start in the order they came
    workers.submit(lambda: order.append("last"))
    workers.shutdown()  # submitted calls finish first
    assert order[-1] == "last"
    assert not any(t.is_alive() for t in workers._threads)


def test_run_resumes_the_coroutine_with_the_result_and_ignores_a_cancelled_call():
    workers = Workers(2)

    async def main():
        assert await workers.run(lambda a, b: a + b, 2, 3) == 5
        slow = workers.run(lambda: time.sleep(0.2) or "late")
        slow.cancel()  # the client went away: the result is dropped, nothing raises
        await asyncio.sleep(0.4)
        return await asyncio.gather(*(workers.run(lambda i=i: i * i) for i in range(10)))

    assert asyncio.run(main()) == [i * i for i in range(10)]
    workers.shutdown()
    with pytest.raises(ValueError, match="count"):
        Workers(0)
