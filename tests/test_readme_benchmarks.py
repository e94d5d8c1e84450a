"""Every command of the README's "Benchmarks" block runs as written, at a small size: the second half of the contract
test of ``tests/test_readme_commands.py`` (its own file, so that it runs in a worker of its own).

SLOW: the 10 benchmarks took 178 CPU-seconds in all (10 minutes of wall time on a shared 2-core host at load average
about 10). Each benchmark runs from the repository root as the README says,
with the size flags of :data:`SMALL` (its numbers are then meaningless; the test checks that it runs and prints).
A benchmark that is not in :data:`SMALL` runs at its own default size.
"""

from __future__ import annotations

import os

import pytest

from tests.support.readme_commands import ROOT, CommandFailed, Runner, shell_blocks

try:
    BLOCKS = [b for b in shell_blocks() if b.section == "Benchmarks"]
except ValueError:  # a fence that is not closed: tests/test_readme_commands.py reports it
    BLOCKS = []

#: Script (or script and mode, as written) -> size flags (each benchmark's own; see its --help).
SMALL = {
    "bench/bench_reader.py": ["--rows", "5000", "--batch", "256", "--steps", "2"],
    "bench/bench_pipeline.py": ["--rows", "2000", "--rounds", "1"],
    "bench/bench_pipeline.py memory": ["--sizes", "1000,2000", "--pipelines", "criteo"],
    "bench/bench_replicas.py": ["--rows", "5000", "--batch", "256", "--steps", "2", "--rounds", "1"],
    "bench/bench_pair_loss.py": ["--quick", "--batch", "256", "--rounds", "1", "--steps", "1", "--pair-batch",
                                 "1024", "--naive-batch", "256"],
    "bench/bench_infonce.py": ["--quick", "--rounds", "1", "--steps", "1"],
    "bench/bench_diagnostics.py": ["--quick", "--rows", "5000", "--batch", "256", "--steps", "2", "--rounds", "1"],
    "bench/bench_serving.py": ["--rows", "64", "--iters", "2"],
    "bench/bench_hybrid_encode.py": ["--requests", "20", "--rounds", "1"],
    "bench/bench_listwise_training.py": ["--requests", "200", "--batch", "16", "--batches", "2", "--steps", "2",
                                         "--rounds", "1"],
    "bench/bench_score_candidates.py": ["--candidates", "100", "--iters", "5", "--rounds", "1"],
}

#: Benchmarks that do not run in the test suite, with the reason.
NOT_RUN = {
    "bench/bench_peers.py": "its --setup installs two other frameworks (TensorFlow, PyTorch: a few GB) into "
                            "virtualenvs of their own, then trains three libraries at 500,000 rows; "
                            "tests/bench/test_bench_peers.py checks its split, metrics, clock, table and setup "
                            "commands",
}


def test_the_benchmarks_block_is_there():
    assert len(BLOCKS) == 1 and all(argv[0] == "python" for argv in BLOCKS[0].commands), BLOCKS
    assert set(NOT_RUN) <= {argv[1] for argv in BLOCKS[0].commands}, NOT_RUN  # no stale rule


@pytest.mark.parametrize("argv", [a for b in BLOCKS for a in b.commands], ids=lambda a: os.path.basename(a[1]))
def test_benchmark_runs_as_written(argv, tmp_path):
    if argv[1] in NOT_RUN:
        pytest.skip(f"{' '.join(argv)} not run: {NOT_RUN[argv[1]]}")
    runner = Runner(ROOT)  # "Run from the repository root"
    runner.env["TMPDIR"] = str(tmp_path)  # scratch files of the benchmarks stay out of the shared /tmp
    try:
        out = runner.run(list(argv) + SMALL.get(" ".join(argv[1:]), SMALL.get(argv[1], [])), timeout=900)
    except CommandFailed as e:
        pytest.fail(str(e), pytrace=False)
    assert out.strip(), f"{argv[1]} printed nothing"
    print("\n".join(runner.log))
