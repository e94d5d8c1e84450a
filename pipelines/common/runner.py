"""Running a pipeline: options (runner checks, staging of tfrec for remote workers), progress lines, the wait.

* :func:`pipeline_options`: ``--runner`` then the user's Beam arguments. On the DirectRunner, one in-process worker
  unless the arguments say otherwise, and the parallel modes refused (:data:`LOSSY_DIRECT_MODES`): Beam's
  DirectRunner lost records with ``--direct_num_workers`` above 1 (``multi_processing`` and ``multi_threading``),
  its parser output coming up short while every row was counted. A runner whose workers are other machines or
  containers gets tfrec staged: ``--setup_file`` of tfrec's source tree (:func:`staging_args`), unless the
  arguments already stage it (a setup file, requirements, extra packages or a container image).
* :class:`ProgressReporter` and :func:`run_pipeline`: progress lines while the pipeline runs; a run that ends in
  another state than ``DONE`` raises.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Callable, List, Optional, Sequence, Tuple

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, PortableOptions, StandardOptions

from tfrec.config import ConfigError

#: Progress counters (rows sent to a split, rows rejected), counted once per chunk by the parser: as Beam metrics
#: (namespace ``tfrec``; what a runner reports while it runs remotely) and in this process (what
#: :class:`ProgressReporter` reads while the DirectRunner runs the pipeline in this process and ``run()`` blocks).
PROGRESS_NAMESPACE = "tfrec"
_ROWS_WRITTEN = Metrics.counter(PROGRESS_NAMESPACE, "rows_written")
_ROWS_REJECTED = Metrics.counter(PROGRESS_NAMESPACE, "rows_rejected")
_LOCAL_PROGRESS = [0, 0]  # rows written, rows rejected, in this process since it started

#: Runners that run the pipeline in this process or on this machine, with tfrec importable: nothing to stage.
LOCAL_RUNNERS = ("DirectRunner", "SwitchingDirectRunner", "BundleBasedDirectRunner", "FnApiRunner",
                 "InteractiveRunner", "PrismRunner", "TestDirectRunner")
#: Environments of a portable runner whose workers already have tfrec: this process (LOOPBACK) or a worker pool
#: started from tfrec's environment (EXTERNAL).
LOCAL_ENVIRONMENTS = ("LOOPBACK", "EXTERNAL")
#: Arguments that stage the code themselves: with one of them given, nothing is added.
STAGING_FLAGS = ("--setup_file", "--requirements_file", "--extra_package", "--extra_packages",
                 "--sdk_container_image", "--worker_harness_container_image", "--prebuilt_sdk_container_image")
#: DirectRunner modes refused: they lost records (Beam's parallel bundles).
LOSSY_DIRECT_MODES = ("multi_processing", "multi_threading")


def count_progress(written: int, rejected: int) -> None:
    """Adds to the progress counters (the Beam metrics and this process's)."""
    _LOCAL_PROGRESS[0] += written
    _LOCAL_PROGRESS[1] += rejected
    _ROWS_WRITTEN.inc(written)
    _ROWS_REJECTED.inc(rejected)


def source_setup_file() -> Optional[str]:
    """tfrec's ``setup.py`` when tfrec runs from its source tree (a checkout or an editable install), else None."""
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "setup.py")
    try:
        with open(path, encoding="utf-8") as f:
            return path if 'name="tfrec"' in f.read() else None
    except OSError:
        return None


def _runner_name(options: PipelineOptions) -> str:
    runner = options.view_as(StandardOptions).runner or "DirectRunner"
    return runner if isinstance(runner, str) else type(runner).__name__


def staging_args(options: PipelineOptions, beam_args: Sequence[str]) -> List[str]:
    """The arguments that stage tfrec for the workers of ``options``' runner: none for a local runner (or a
    portable one with LOOPBACK / EXTERNAL workers) or when ``beam_args`` stage code already, else
    ``--setup_file=<tfrec's setup.py>``.

    Raises:
      tfrec.config.ConfigError: a remote runner, nothing staged, and tfrec not run from its source tree.
    """
    runner = _runner_name(options)
    if runner.split(".")[-1] in LOCAL_RUNNERS:
        return []
    environment = (options.view_as(PortableOptions).environment_type or "").upper()
    if environment in LOCAL_ENVIRONMENTS:
        return []
    if any(a.split("=", 1)[0] in STAGING_FLAGS for a in beam_args):
        return []
    setup_file = source_setup_file()
    if setup_file is None:
        raise ConfigError(f"the {runner} workers need tfrec and it is not run from its source tree: give "
                          "--sdk_container_image=IMAGE (an image with tfrec installed) or --setup_file=PATH/setup.py "
                          "(tfrec's source tree) in the Beam arguments")
    return [f"--setup_file={setup_file}"]


def check_direct_mode(options: PipelineOptions, what: str) -> None:
    """Refuses the DirectRunner's parallel modes (:data:`LOSSY_DIRECT_MODES`, or more than one worker).

    Raises:
      tfrec.config.ConfigError: one line naming the mode and what to run instead.
    """
    if _runner_name(options).split(".")[-1] not in ("DirectRunner", "SwitchingDirectRunner"):
        return
    direct = options.view_as(DirectOptions)
    mode, workers = direct.direct_running_mode, direct.direct_num_workers
    if mode in LOSSY_DIRECT_MODES or workers != 1:
        raise ConfigError(
            f"{what}: --direct_running_mode={mode} --direct_num_workers={workers} is refused: Beam's DirectRunner "
            "lost records with parallel workers; run with one in-process worker (the default, no --direct_* "
            "argument) or on a portable runner (--runner=PortableRunner --job_endpoint=embed "
            "--environment_type=EXTERNAL --environment_config=localhost:PORT, README: Pipelines)")


def pipeline_options(runner: str, beam_args: Sequence[str], what: str = "prepare") -> PipelineOptions:
    """``--runner runner`` then ``beam_args`` (which win), the DirectRunner's mode, and the staging of tfrec.

    The DirectRunner defaults to one in-memory worker unless ``beam_args`` say otherwise (measured fastest for this
    CPU-bound, pure-Python pipeline); its parallel modes are refused (:func:`check_direct_mode`). Remote workers get
    tfrec staged (:func:`staging_args`).

    Raises:
      tfrec.config.ConfigError: a refused DirectRunner mode; a remote runner that cannot get tfrec.
    """
    args = ["--runner", runner, *beam_args]
    options = PipelineOptions(args)
    given = " ".join(beam_args)
    direct = options.view_as(DirectOptions)
    if "--direct_running_mode" not in given:
        direct.direct_running_mode = "in_memory"
    if "--direct_num_workers" not in given:
        direct.direct_num_workers = 1
    check_direct_mode(options, what)
    staged = staging_args(options, beam_args)
    if staged:
        options = PipelineOptions(args + staged)
    return options
class ProgressReporter:
    """Prints a line every ``every`` seconds while a pipeline runs: rows read so far (sent to a split, rejected),
    their rate and the time since the start.

    The counts are those :class:`ParseChunks` adds once per chunk: from the run's Beam metrics when the runner
    returned a result while the pipeline runs (a remote runner), else from this process's counters (the
    DirectRunner runs the pipeline in this process and ``run()`` returns only at the end). Where neither is
    visible yet (a multi-process DirectRunner), the line says the pipeline is running and for how long.

    Args:
      printer: where the lines go.
      every: seconds between lines.
      what: the command, at the start of each line.
    """

    def __init__(self, printer: Callable[[str], None], every: float, what: str):
        self.printer, self.every, self.what = printer, float(every), what
        self.result = None  # the runner's PipelineResult, once ``run()`` returned it
        self._base = tuple(_LOCAL_PROGRESS)
        self._start = time.monotonic()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tfrec-progress", daemon=True)

    def __enter__(self) -> "ProgressReporter":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()

    def counts(self) -> Tuple[int, int]:
        """``(rows written, rows rejected)`` so far."""
        if self.result is not None:
            try:
                counters = self.result.metrics().query(MetricsFilter().with_namespace(PROGRESS_NAMESPACE))
                got = {c.key.metric.name: (c.committed if c.committed is not None else c.attempted) or 0
                       for c in counters["counters"]}
                if got:
                    return int(got.get("rows_written", 0)), int(got.get("rows_rejected", 0))
            except Exception:  # noqa: BLE001 - a runner without metrics: this process's counters
                pass
        return _LOCAL_PROGRESS[0] - self._base[0], _LOCAL_PROGRESS[1] - self._base[1]

    def line(self) -> str:
        """The progress line of now."""
        elapsed = time.monotonic() - self._start
        written, rejected = self.counts()
        read = written + rejected
        if not read:
            return f"{self.what}: running, {elapsed:.0f} s"
        return (f"{self.what}: {read:,} rows read ({written:,} to the splits, {rejected:,} rejected), "
                f"{read / max(elapsed, 1e-9):,.0f} rows/s, {elapsed:.0f} s")

    def _loop(self) -> None:
        while not self._done.wait(self.every):
            self.printer(self.line())



def run_pipeline(build: Callable[[beam.Pipeline], object], options: PipelineOptions, what: str, runner: str,
                 progress: Optional[Callable[[str], None]] = None, progress_every: float = 5.0) -> None:
    """Builds a pipeline with ``build(p)``, runs it with ``options`` and waits for it to finish.

    Args:
      build: adds the transforms to the new pipeline.
      options: the pipeline options (the runner among them).
      what: the command, named in the error (``prepare``, ``prepare-hybrid``).
      runner: the configured runner, named in the error.
      progress: where a :class:`ProgressReporter` prints its lines while the pipeline runs (rows counted by
        :class:`ParseChunks`); ``None`` prints nothing.
      progress_every: seconds between progress lines.

    Raises:
      RuntimeError: the run ended in another state than ``DONE``.
    """
    p = beam.Pipeline(options=options)
    build(p)
    if progress is None:
        state = p.run().wait_until_finish()
    else:
        with ProgressReporter(progress, progress_every, what) as reporter:
            reporter.result = p.run()
            state = reporter.result.wait_until_finish()
    if state not in (None, beam.runners.runner.PipelineState.DONE):
        raise RuntimeError(f"{what}: the {runner} run ended in state {state}")
