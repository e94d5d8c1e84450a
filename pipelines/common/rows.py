"""The skeleton of a row pipeline (Criteo, multi-task): build, the last step's side files, and the accounting.

:func:`build_rows` wires read -> parse (a :class:`pipelines.common.stages.ParseChunks` per input group) -> the shard
sink (examples, dead letters) -> statistics, vocabularies (per (field, bucket)) and ``transform.json``; its last
step writes ``_counts.json``: what the parser saw (rows per split, rejections per reason), what the reader read
(``rows_in``) and what the sinks wrote (records per split, dead-letter lines). :func:`finalize_rows` checks them
after the run (:func:`check_accounting`): ``rows_in == sum(parsed) + rejected``, and per split the sink wrote what
the parser sent it; a run that lost (or repeated) records fails loudly, whatever the runner did.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.pvalue import AsList, AsSingleton

from pipelines.common import files
from pipelines.common.combiners import MergeAccumulatorsFn, PipelineStatsFn, RowsInFn
from pipelines.common.sink import records_by_split, remove_temp_dir
from pipelines.common.split import SPLITS
from pipelines.common.stages import DEADLETTER, STATS, VOCAB, ParseChunks, parse_inputs, temp_directory, write_outputs
from pipelines.common.vocab import WriteVocabularies

COUNTS_FILE = "_counts.json"


class RowAccountingError(RuntimeError):
    """A finished run whose counts do not add up: rows lost (or repeated) between the reader, the parser and the
    sinks."""


def check_accounting(what: str, rows_in: int, parsed: Dict[str, int], rejected: int, written: Dict[str, int],
                     dead_written: int, counts_path: str, unit: str = "rows") -> None:
    """Checks a finished run's counts.

    Args:
      what: the command, at the start of the message.
      rows_in: rows read (header lines excluded).
      parsed: rows the parser sent to each split.
      rejected: rows the parser sent to the dead letter.
      written: records the sink wrote per split.
      dead_written: lines the dead-letter sink wrote.
      counts_path: the run's raw counts file, named in the message.
      unit: what a row is called (``rows``, ``requests``).

    Raises:
      RowAccountingError: one line: ``rows_in=N != rows_written ... + rows_rejected ...`` and each split (or the dead
        letter) whose written count differs from the parser's.
    """
    total = sum(written.values())
    problems = []
    if rows_in != sum(parsed.values()) + rejected:
        problems.append(f"{unit}_in={rows_in} != {unit}_written {sum(parsed.values())} {dict(parsed)} + "
                        f"{unit}_rejected {rejected}")
    for split in SPLITS:
        if written.get(split, 0) != parsed.get(split, 0):
            problems.append(f"{split}: the parser sent {parsed.get(split, 0):,} {unit}, the sink wrote "
                            f"{written.get(split, 0):,}")
    if dead_written != rejected:
        problems.append(f"dead letter: {rejected:,} rejected, {dead_written:,} written")
    if problems:
        raise RowAccountingError(f"{what}: row accounting failed: {'; '.join(problems)} ({total:,} records in the "
                                 f"shard files); {unit} were lost or repeated by the run, its output is not "
                                 f"usable; see {counts_path}")


def _write_counts(_, out, temp_dir, categorical, rows_in, stats, sizes, written, dead_written):
    """The last pipeline step: ``transform.json`` and the raw counts (``_counts.json``); removes the parts'
    temporary directory (parts of failed bundles included)."""
    remove_temp_dir(temp_dir)
    files.write_json(files.join(out, "transform.json"), stats["train"][1])
    n_written, names = records_by_split(written)
    size = dict(sizes)
    files.write_json(files.join(out, COUNTS_FILE), {
        "rows_in": rows_in,
        "splits": {"train": list(stats["train"][0]), "valid": list(stats["valid"]), "test": list(stats["test"])},
        "rejected_by_reason": stats[DEADLETTER],
        "vocabulary_sizes": {f: size[f] for f in categorical},
        "files": {s: names.get(s, []) for s in SPLITS},
        "deadletter_files": sorted(r.file_name for r in dead_written),
        "written": {s: n_written.get(s, 0) for s in SPLITS},
        "deadletter_written": sum(r.records for r in dead_written),
    })


def build_rows(p: beam.Pipeline, out: str, groups: Dict[str, List[str]], shards: int,
               parser: Callable[[Optional[str]], ParseChunks], stats_fn: PipelineStatsFn,
               count_rows: Callable[[str, List[bytes]], int], min_count: int) -> Dict[str, object]:
    """Adds a whole row pipeline to ``p``.

    Args:
      p: the pipeline.
      out: the output directory.
      groups: input group -> files (``""``: the hash split, else a split name).
      shards: shards per split.
      parser: a group's fixed split (``None`` in hash mode) -> its parse DoFn.
      stats_fn: the statistics of a run (its ``categorical`` fields get vocabularies).
      count_rows: ``(file, lines) -> rows among them`` (all lines but headers), the left side of the accounting.
      min_count: the vocabularies' least count.

    Returns:
      The main PCollections: ``lines``, ``examples``, ``deadletter`` (as :func:`pipelines.common.stages
      .parse_inputs`), ``written`` (a :class:`pipelines.common.sink.ShardResult` per shard file) and
      ``dead_written`` (the dead-letter file's).
    """
    temp_dir = temp_directory(p, out)
    result = parse_inputs(p, groups, parser)
    result["written"], result["dead_written"] = write_outputs(p, out, shards, result["examples"],
                                                              result[DEADLETTER], temp_dir)
    rows_in = result["lines"] | "RowsIn" >> beam.CombineGlobally(RowsInFn(count_rows))
    stats = result[STATS] | "Stats" >> beam.CombineGlobally(MergeAccumulatorsFn(stats_fn))
    sizes = result[VOCAB] | "Vocabularies" >> WriteVocabularies(out, stats_fn.categorical, min_count)
    _ = (p | "Once" >> beam.Create([None])
         | "WriteCounts" >> beam.Map(_write_counts, out, temp_dir, stats_fn.categorical, AsSingleton(rows_in),
                                     AsSingleton(stats), AsList(sizes), AsList(result["written"]),
                                     AsList(result["dead_written"])))
    return result


def finalize_rows(out: str, what: str = "prepare") -> Dict[str, object]:
    """After a run of :func:`build_rows`: reads and removes ``_counts.json``, checks the accounting, returns the
    counts (``rows_in``, ``splits`` (the parser's), ``written`` (the sink's), ``rejected_by_reason``, ...).

    Raises:
      RowAccountingError: the counts do not add up (:func:`check_accounting`); ``_counts.json`` is kept.
    """
    counts_path = files.join(out, COUNTS_FILE)
    counts = files.read_json(counts_path)
    parsed = {s: int(counts["splits"][s][0]) for s in SPLITS}
    rejected = int(sum(counts["rejected_by_reason"].values()))
    check_accounting(what, int(counts["rows_in"]), parsed, rejected, counts["written"],
                     int(counts["deadletter_written"]), counts_path)
    FileSystems.delete([counts_path])
    return counts


def output_directory(output: str, owned_patterns: Sequence[str]) -> str:
    """The run's output directory (absolute when local) after removing what a previous run wrote there
    (``owned_patterns``, the pipeline's own names only).

    Raises:
      ValueError: an empty ``output``.
    """
    if not output:
        raise ValueError("prepare.output is empty; set it to the output directory of the prepared dataset")
    output = files.absolute(output)
    files.delete_owned(output, owned_patterns)
    return output
