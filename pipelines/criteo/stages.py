"""The shared Beam stages, now in :mod:`pipelines.common` (re-exported here for code written against this module).

``parse_inputs`` and ``write_outputs`` keep their signatures of this module; new code uses
:func:`pipelines.common.rows.build_rows` (or :func:`pipelines.common.stages.parse_inputs` and
:func:`pipelines.common.stages.write_outputs`).
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Tuple

import apache_beam as beam

from pipelines.common import stages as _stages
from pipelines.common.runner import PROGRESS_NAMESPACE, ProgressReporter, run_pipeline  # noqa: F401
from pipelines.common.split import SPLITS, HashSplitter  # noqa: F401
from pipelines.common.stages import (DEADLETTER, SHARD_TEMPLATE, STATS, STATS_ROWS, VOCAB,  # noqa: F401
                                     ParseChunks, temp_directory)


def parse_inputs(p: beam.Pipeline, groups: Dict[str, List[str]], shards: int,
                 parser: Callable[[Optional[str]], ParseChunks]) -> Tuple[Dict[str, object], object]:
    """:func:`pipelines.common.stages.parse_inputs` as ``(result, bundle_stats)`` (``shards`` is no longer needed:
    the sink writes every shard file itself)."""
    result = _stages.parse_inputs(p, groups, parser)
    return result, result[STATS]


def write_outputs(p: beam.Pipeline, out: str, shards: int, examples, deadletter,
                  label: str = "WriteExamples") -> Tuple[object, object, str]:
    """:func:`pipelines.common.stages.write_outputs` as ``(written, dead_files, temp_dir)``: ``dead_files`` the
    dead-letter files' full paths; ``temp_dir`` the parts' directory, for the last step to remove."""
    temp_dir = temp_directory(p, out)
    written, dead_written = _stages.write_outputs(p, out, shards, examples, deadletter, temp_dir, label)
    dead_files = dead_written | f"{label}DeadFiles" >> beam.Map(lambda r: _stages_join(out, r.file_name))
    return written, dead_files, temp_dir


def _stages_join(out: str, name: str) -> str:
    from pipelines.common.files import join

    return join(out, *name.split("/"))
