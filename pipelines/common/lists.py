"""The request-list accounting shared by the list-wise pipelines (:mod:`pipelines.hybrid_samples.pipeline` and
the Taobao lists, :mod:`pipelines.taobao.lists_pipeline`): one list per request, statistics per split, the raw
counts file the pipeline's last step writes and the finaliser that checks it and writes ``stats.json`` and
``schema.json``.

Every list counts, in its split's counter (:func:`count_list`): ``requests``, ``items``, one key per sample type
name (``N1`` ... of :data:`tfrec.features.SAMPLE_TYPES`) and ``positives_<task>`` per task. The accounting
(:func:`finalize_lists`) checks the requests read against the requests built per split plus the rejected ones, and
the records the sink wrote per split (and the dead-letter lines it wrote) against the requests built (and
rejected): :func:`pipelines.common.rows.check_accounting`, as for the point-wise pipelines' rows.
"""

from __future__ import annotations

import collections
from typing import Dict, Iterable, Mapping, Optional, Sequence

from apache_beam.io.filesystems import FileSystems

from pipelines.common import files
from pipelines.common.rows import check_accounting
from pipelines.common.sink import records_by_split, remove_temp_dir
from pipelines.common.split import SPLITS
from pipelines.common.stages import DEADLETTER
from tfrec.features import SAMPLE_TYPES, ListwiseSchema

COUNTS_FILE = "_counts.json"
_TYPE_NAMES = {v: k for k, v in SAMPLE_TYPES.items()}


def count_list(counter: collections.Counter, cols: Mapping[str, Sequence], tasks: Iterable[str]) -> None:
    """Adds one built list (``cols``: per-item columns with ``item``, ``sample_type`` and one label per task) to
    its split's ``counter``."""
    counter["requests"] += 1
    counter["items"] += len(cols["item"])
    for t in cols["sample_type"]:
        counter[_TYPE_NAMES[int(t)]] += 1
    for name in tasks:
        counter[f"positives_{name}"] += int(sum(cols[name]))


def write_list_counts(out: str, temp_dir: str, requests_in: int, stats: Dict[str, dict], written, dead_written,
                      **extra) -> None:
    """The pipeline's last step: removes the parts' temporary directory and writes the raw counts
    (``_counts.json``): requests in, the statistics, the shard files and records the sink wrote per split, the
    dead-letter lines written, and ``extra`` (the pipeline's own counts).

    Args:
      written: a :class:`pipelines.common.sink.ShardResult` per shard file; dead_written: the dead letter's.
    """
    remove_temp_dir(temp_dir)
    n_written, names_by_split = records_by_split(written)
    files.write_json(files.join(out, COUNTS_FILE), {
        "requests_in": requests_in, "stats": stats, **extra,
        "files": {s: names_by_split.get(s, []) for s in SPLITS},
        "deadletter_files": sorted(r.file_name for r in dead_written),
        "written": {s: n_written.get(s, 0) for s in SPLITS},
        "deadletter_written": sum(r.records for r in dead_written)})


def finalize_lists(out: str, what: str, schema: ListwiseSchema, other_dead: str = "",
                   extra_keys: Sequence[str] = (), extra: Optional[Mapping[str, object]] = None) -> Dict[str, object]:
    """After a run whose last step was :func:`write_list_counts`: checks the accounting, writes ``schema.json``
    and ``stats.json`` (the common keys below, ``extra_keys`` copied from the counts, then ``extra``) and removes the
    counts.

    Args:
      out: the output directory; what: the command, at the start of an accounting error.
      schema: the lists' schema (its tasks name the label rates).
      other_dead: the key of the raw counts that holds the dead-letter lines that are not requests (rejected
        item-table lines), if any.
      extra_keys: keys of the raw counts copied into the stats; extra: more stats (e.g. the run's config).

    Returns:
      The stats: ``requests_in``, ``requests_written`` (what the sink wrote per split), ``requests_rejected``,
      ``rejected_by_reason``, ``items_per_sample_type``, ``label_rate_on_impressions`` (positives of each task
      per N1 item), ``mean_list_size``, ``files``, ``deadletter_files``, then ``extra_keys`` and ``extra``.

    Raises:
      pipelines.common.rows.RowAccountingError: (a ``RuntimeError``) the counts do not add up; the counts file is
        kept and named.
    """
    counts_path = files.join(out, COUNTS_FILE)
    counts = files.read_json(counts_path)
    st = counts["stats"]
    reasons = dict(sorted(st.get(DEADLETTER, {}).items()))
    built = {s: int(st.get(s, {}).get("requests", 0)) for s in SPLITS}
    rejected = sum(reasons.values())
    check_accounting(what, int(counts["requests_in"]), built, rejected, counts["written"],
                     int(counts["deadletter_written"]) - int(counts.get(other_dead, 0)), counts_path, unit="requests")
    written = {s: int(counts["written"][s]) for s in SPLITS}
    per_type, rates, sizes = {}, {}, {}
    for s in SPLITS:
        c = st.get(s, {})
        per_type[s] = {t: int(c.get(t, 0)) for t in SAMPLE_TYPES}
        n1 = per_type[s]["N1"]
        rates[s] = {name: (c.get(f"positives_{name}", 0) / n1 if n1 else None) for name in schema.tasks}
        sizes[s] = c.get("items", 0) / written[s] if written[s] else None
    stats = {
        "requests_in": counts["requests_in"], "requests_written": written, "requests_rejected": rejected,
        "rejected_by_reason": reasons, "items_per_sample_type": per_type, "label_rate_on_impressions": rates,
        "mean_list_size": sizes, "files": counts["files"], "deadletter_files": counts["deadletter_files"],
        **{k: counts[k] for k in extra_keys}, **(extra or {}),
    }
    files.write_json(files.join(out, "schema.json"), schema.to_json())
    files.write_json(files.join(out, "stats.json"), stats)
    FileSystems.delete([counts_path])
    return stats
