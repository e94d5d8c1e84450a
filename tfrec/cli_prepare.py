"""``tfrec prepare``: the Criteo and multi-task Beam pipelines from the command line.

What the command adds to the Beam pipeline of the input format's family (``tfrec.families.family_of_format``:
:func:`pipelines.criteo.run` for the point-wise formats, :func:`pipelines.multitask.run` for the multi-task ones):

* usage checks before anything runs (exit 2): an output directory; pre-split files need a train and a valid split
  (``--train`` and ``--valid``; ``--test`` may be left out): training picks its best weights, stops early and
  lowers the learning rate on the valid split, so a run without one could not be trained on. A file listed for
  two splits, a directory or an archive as input, or a CSV header that does not fit the format stop the run too
  (raised by the pipelines' input planning);
* a progress line every ``--progress-every`` seconds while Beam runs (rows read, sent to a split, rejected) and
  the wall time at the end;
* the check that the run wrote usable training data (:func:`pipelines.criteo.pipeline.check_usable`): no rows,
  every row rejected, or an empty train or valid split is a failed run (exit 1) with one line saying why, after
  the summary and the dead letters are written.
"""

from __future__ import annotations

import os
import time
from typing import Callable, Dict, Sequence, Tuple

from tfrec.config import ConfigError, PrepareConfig


def check_split_inputs(cfg: PrepareConfig) -> None:
    """Usage checks of the inputs before the run.

    Raises:
      ConfigError: no output directory, or one that cannot be created or written; pre-split files without train
        files, or without valid files.
    """
    if not cfg.output:
        raise ConfigError("no output directory given (--out or prepare.output)")
    if cfg.train or cfg.valid or cfg.test:
        if not cfg.train:
            raise ConfigError("pre-split files without train files: give --train FILE (prepare.train), or --input "
                              "to split every file 7:2:1 by hash")
        if not cfg.valid:
            raise ConfigError("--train without --valid: training needs a validation split (best weights, early "
                              "stopping); give --valid FILE (prepare.valid), or --input to split every file 7:2:1 "
                              "by hash")
    if "://" not in cfg.output:
        _check_local_output(cfg.output)


def _check_local_output(output: str) -> None:
    """A local output directory must be one, or be creatable: its nearest existing ancestor a writable directory
    (checked without creating anything, so a run stopped by a later check leaves no trace)."""
    path = os.path.abspath(output)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    if not os.path.isdir(path):
        raise ConfigError(f"the output directory {output} cannot be created: {path} is not a directory")
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"the output directory {output} is not writable ({path})")


def run_prepare(cfg: PrepareConfig, printer: Callable[[str], None] = print, progress_every: float = 5.0) -> Dict:
    """Runs the pipeline of ``cfg.input_format``, prints its progress and summary, checks its output is usable.

    Args:
      cfg: the prepare config.
      printer: where the progress lines and the summary go.
      progress_every: seconds between progress lines (0: none).

    Returns:
      The run's statistics (``stats.json``).

    Raises:
      ConfigError: see :func:`check_split_inputs`; and the pipelines' input errors.
      pipelines.criteo.pipeline.NoUsableDataError: the run wrote no usable training data.
    """
    from pipelines.criteo.pipeline import check_usable
    from tfrec.families import family_of_format

    check_split_inputs(cfg)
    family = family_of_format(cfg.input_format)
    start = time.monotonic()
    progress = printer if progress_every > 0 else None
    stats = family.run_pipeline(cfg, progress=progress, progress_every=progress_every)
    wall = time.monotonic() - start
    printer(format_summary(stats, cfg.output, wall, family.summary_rates()))
    check_usable(stats, cfg.output)
    if not stats["rows_written"].get("test"):
        printer("note: the test split is empty; `tfrec evaluate --split test` needs rows there")
    return stats


def format_summary(stats: Dict, output: str, wall_seconds: float, rates: Sequence[Tuple[str, str]]) -> str:
    """The summary table of a finished run: rows in / rejected / per split and the train split's rates
    (``(label, stats key)``, the family's :meth:`tfrec.families.rows.RowFamily.summary_rates`)."""
    from tfrec.cli import _format_table

    rows = [("rows in", stats["rows_in"]), ("rows rejected", stats["rows_rejected"])]
    rows += [(f"rows {s}", stats["rows_written"].get(s, 0)) for s in ("train", "valid", "test")]
    for label, key in rates:
        value = stats[key].get("train")
        rows.append((label, "n/a (empty split)" if value is None else value))
    return f"prepared {output} in {wall_seconds:.1f} s\n" + _format_table(rows)
