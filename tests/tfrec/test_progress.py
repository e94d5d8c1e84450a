"""The training progress lines: the examples/s of a step line leave out the first step of the epoch (which, in a
run's first epoch, includes tracing the train function), and the throughput leaves out the epoch-end work.
Time is a fake clock here, so the rates are exact."""

import re

import pytest

from tfrec import callbacks


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(callbacks.time, "perf_counter", c)
    return c


def _rates(lines):
    return [float(re.search(r"([\d,]+) examples/s", l).group(1).replace(",", "")) for l in lines]


def test_first_step_line_excludes_the_traced_first_step(clock):
    lines = []
    logger = callbacks.ProgressLogger(every_seconds=10, global_batch_size=64, epochs=1, printer=lines.append)
    logger.on_epoch_begin(0)
    clock.now = 47.0  # the first step: tracing the train function took 47 s
    logger.on_train_batch_end(0, {"loss": 0.5})
    assert lines == []  # one step gives no measurable rate
    for step in range(1, 41):  # then 0.5 s a step: 128 examples/s
        clock.now = 47.0 + 0.5 * step
        logger.on_train_batch_end(step, {"loss": 0.5})
    # The first line once a rate is measurable (step 2: 10 s have passed since the epoch began), then 10 s later.
    assert [l.split("  loss")[0] for l in lines] == ["  epoch 1/1  step 2", "  epoch 1/1  step 22"]
    assert _rates(lines) == [128.0, 128.0]  # not 64 * 2 / 47.5 = 3 (or "1 examples/s" after the first step)


def test_throughput_ends_at_the_last_train_step(clock):
    tp = callbacks.Throughput(global_batch_size=100)
    tp.on_epoch_begin(0)
    for step in range(10):
        clock.now = 1.0 + step  # 10 steps in 10 s
        tp.on_train_batch_end(step)
    clock.now = 60.0  # validation and the epoch-end callbacks (exact metrics, checkpoints) take 50 s
    tp.on_epoch_end(0)
    assert tp.steps == 10 and tp.epoch_rates == [100.0] and tp.examples_per_second == 100.0
