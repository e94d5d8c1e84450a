"""Reference-results documents: ``docs/results/<name>.md`` from an experiment's run records.

``python -m tfrec.experiments.core.results_doc record --experiment DIR --protocol sparsity --name kdd-sparsity
--command "tfrec experiment ..." [--host-load DIR/host_load.log]`` copies the run records of one protocol of a
``tfrec experiment`` output directory into ``docs/results/<name>/`` (small files, committed):

* ``cells.json``: one record per finished cell: setting, seed, params, baseline, the metrics the protocol names for
  documents (:meth:`tfrec.experiments.core.registry.Protocol.results_metrics_of`: those the tables show and
  those only recorded; :func:`tfrec.experiments.core.registry.metric_value` of the cell's run), epochs run, best
  epoch, training and wall seconds, and the run's fingerprint;
* ``record.json``: the protocol's run record (``<protocol>/run_record.json``): the command, options, seeds,
  versions, data statistics, the base config, start and end times, the wall time summed over the invocations
  that made the cells (the record's own and its ``previous_runs``), and the definitions of the metrics
  (``metrics``: ``shown`` and ``recorded``), so that a document renders and is checked without the protocol's
  code;
* ``figures/`` (optional, ``--figures``): PNGs of the protocol's report, shown in the document;
* ``host_load.log`` (optional, copied): ``<UTC time> <contents of /proc/loadavg>`` lines sampled during the run;
  ``record.json`` has their 1-minute load's min, mean and max.

``python -m tfrec.experiments.core.results_doc render --name kdd-sparsity`` then writes ``docs/results/<name>.md``
from those files and the hand-written ``docs/results/<name>/reading.md``, a ``str.format`` template whose
numbers all come from the records (:func:`tfrec.experiments.core.results_text.context`):
``{mean[<setting>/<metric>]:.4f}``, ``std``, ``diff`` (mean over seeds of setting - baseline; ``pp``: the same
x 100, percentage points of a rate), ``p`` (two-sided
paired t-test, :func:`tfrec.experiments.core.stats.paired_test`, as the experiment tables compute it), ``d`` (the
paired effect size ``d_z = mean(diff) / std(diff)``), ``ratio`` (the KDD paper's AUC lift / BCE drop ratio of the
means), ``versus[<setting>|<other>/<metric>][diff]`` (and ``p``, ``d``, ...: a paired comparison with any other
setting, e.g. an ablation against the full model), ``record[...]``, ``reference[...]`` (the papers' numbers,
in ``record.json``'s ``reference``), ``load[...]`` (host load), ``params[<setting>/<param>]``, ``epochs[<setting>/<seed>]`` and ``cells[...]``
(count, mean and max training minutes, fewest and most epochs, earliest and latest best epoch). ``tests/tfrec/experiments/test_results_docs.py`` renders every document again and checks its
numbers against an independent recomputation from ``cells.json``.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

from tfrec.experiments.core.registry import Metric, get, metric_value
from tfrec.experiments.core.results_text import context, metric_dict, metric_of, table_rows, tables

DEFAULT_ROOT = "docs/results"
#: The base config's sections a document's record keeps (those a protocol's family has).
CONFIG_SECTIONS = ("simulation", "prepare", "data", "model", "train", "cascade", "hybrid", "preranking")


def _result_paths(experiment: str, protocol: str) -> List[str]:
    return sorted(glob.glob(os.path.join(experiment, "cells", protocol, "*", "seed-*", "result.json")))


def results_metrics(experiment: str, protocol: str) -> Tuple[Tuple[Metric, ...], Tuple[Metric, ...]]:
    """``(shown, recorded)``: the protocol's :meth:`Protocol.results_metrics_of` of its first finished cell."""
    paths = _result_paths(experiment, protocol)
    return get(protocol).results_metrics_of(_read(paths[0])["run"]) if paths else ((), ())


def training_facts(run: Dict[str, Any]) -> Tuple[Any, Any, Optional[float]]:
    """``(epochs_run, best_epoch, train_seconds)`` of a cell's run. A cell that trains one model has its training
    summary in ``run["train"]``; one that trains several (PWiseR's single-task cell: a CTR and a CVR model,
    ``run["train"] = {task: summary}``) gives a list of each model's epochs, in task order, and the sum of their
    seconds. ``train_seconds`` is the cell's own timing of training where it records one (KDD, HCCP), else the
    Keras fits' wall seconds from the summaries (PWiseR)."""
    train = run.get("train") or {}
    models = [train] if "epochs_run" in train else [v for v in train.values() if isinstance(v, dict) and "epochs_run" in v]
    if not models:
        return None, None, run.get("train_seconds")
    seconds = run.get("train_seconds")
    if seconds is None and all(m.get("wall_seconds") is not None for m in models):
        seconds = float(sum(m["wall_seconds"] for m in models))
    if len(models) == 1:
        return models[0]["epochs_run"], models[0].get("best_epoch"), seconds
    return [m["epochs_run"] for m in models], [m.get("best_epoch") for m in models], seconds


def cell_records(experiment: str, protocol: str, metrics: Sequence[Metric]) -> List[Dict[str, Any]]:
    """The finished cells of ``protocol`` under the experiment directory, as small records (module docstring)
    with the values of ``metrics``, in the protocol's settings order, then by seed."""
    out = []
    for path in _result_paths(experiment, protocol):
        cell = _read(path)
        run = cell["run"]
        epochs_run, best_epoch, train_seconds = training_facts(run)
        out.append({
            "setting": cell["setting"], "seed": cell["seed"], "params": cell["params"], "baseline": cell["baseline"],
            "metrics": {m.key: metric_value(run, m) for m in metrics},
            "epochs_run": epochs_run, "best_epoch": best_epoch,
            "train_seconds": train_seconds, "wall_seconds": run.get("wall_seconds"),
            "fingerprint": cell["fingerprint"]})
    order = {}
    for c in out:
        order.setdefault(c["setting"], len(order))
    run_record = _read(os.path.join(experiment, protocol, "run_record.json")) or {}
    names = [c["cell"].split("/")[1] for c in run_record.get("cells", [])]
    rank = {n: i for i, n in enumerate(dict.fromkeys(names))}
    return sorted(out, key=lambda c: (rank.get(c["setting"], len(rank) + order[c["setting"]]), c["seed"]))


def _read(path: str) -> Optional[Dict[str, Any]]:
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _write(path: str, obj: Any) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.write("\n")
    return path


def run_record(experiment: str, protocol: str, command: str) -> Dict[str, Any]:
    """The protocol's run record, trimmed to what a reader needs, with the wall time over all invocations."""
    rec = _read(os.path.join(experiment, protocol, "run_record.json"))
    if rec is None:
        raise FileNotFoundError(f"no run record {os.path.join(experiment, protocol, 'run_record.json')}")
    runs = rec.get("previous_runs", []) + [{k: rec.get(k) for k in ("started", "finished", "wall_seconds")}]
    cfg = rec.get("base_config", {})
    return {
        "protocol": protocol, "title": rec.get("title"), "command": command, "options": rec.get("options"),
        "seeds": rec.get("seeds"), "versions": rec.get("versions"),
        # Rows of a row dataset, requests (lists) of a list-wise one.
        "data_rows": (rec.get("data_stats") or {}).get("rows_written"),
        "data_requests": (rec.get("data_stats") or {}).get("requests_written"),
        "config": {k: cfg[k] for k in CONFIG_SECTIONS if k in cfg},
        "invocations": runs, "started": runs[0]["started"], "finished": runs[-1]["finished"],
        "wall_seconds": sum(float(r.get("wall_seconds") or 0.0) for r in runs),
    }


def host_load(path: Optional[str]) -> Optional[Dict[str, Any]]:
    """``{"samples", "min", "mean", "max"}`` of the 1-minute load average in a ``host_load.log``."""
    if not path or not os.path.exists(path):
        return None
    loads = [float(line.split()[1]) for line in open(path, encoding="utf-8") if len(line.split()) > 1]
    if not loads:
        return None
    return {"samples": len(loads), "min": min(loads), "mean": sum(loads) / len(loads), "max": max(loads)}


def render(name: str, root: str = DEFAULT_ROOT) -> str:
    """The text of ``<root>/<name>.md`` from ``<root>/<name>/{cells,record}.json`` and ``reading.md``."""
    folder = os.path.join(root, name)
    cells = _read(os.path.join(folder, "cells.json"))
    record = _read(os.path.join(folder, "record.json"))
    metrics = [metric_of(m) for m in record["metrics"]["shown"]]
    every = metrics + [metric_of(m) for m in record["metrics"]["recorded"]]
    rows = table_rows(cells, metrics)
    ctx = context(cells, record, every)
    with open(os.path.join(folder, "reading.md"), encoding="utf-8") as f:
        reading = f.read().format_map(ctx)
    v = record.get("versions") or {}
    load = record.get("host_load")
    planned = ((record.get("config") or {}).get("train") or {}).get("epochs", "?")
    facts = ctx["cells"]
    lines = [
        f"# Reference results: {name} ({record['title']})", "",
        "<!-- Written by `python -m tfrec.experiments.core.results_doc render --name " + name + "` from the records in "
        f"`{name}/`; tests/tfrec/experiments/test_results_docs.py checks every number. Edit `{name}/reading.md`, not this file. -->", "",
        "## How it was run", "",
        "```bash", record["command"], "```", "",
        f"- Started {record['started']}, finished {record['finished']}; wall time {record['wall_seconds'] / 60:.1f} "
        f"min over {len(record['invocations'])} invocation(s) (resumed ones included).",
        f"- Cells: {len(cells)} ({len(rows)} settings, seeds {', '.join(str(s) for s in sorted({c['seed'] for c in cells}))}); "
        f"training seconds per cell {min(c['train_seconds'] for c in cells):.0f} to "
        f"{max(c['train_seconds'] for c in cells):.0f}; epochs run {facts['epochs_min']} to {facts['epochs_max']} of "
        f"{planned} planned (fewer: early stopping)" + (f"; a cell of {facts['models_max']} models counts each model's "
                                                        "epochs" if facts["models_max"] > 1 else "") + ".",
        "- Host: " + (f"1-minute load average {load['min']:.2f} to {load['max']:.2f} (mean {load['mean']:.2f}, "
                      f"{load['samples']} samples) on {record.get('cpus', '?')} cores; the run was niced."
                      if load else "load not recorded."),
        f"- Versions: tfrec {v.get('tfrec_commit', '?')}, TensorFlow {v.get('tensorflow', '?')}, tf_keras "
        f"{v.get('tf_keras', '?')}, NumPy {v.get('numpy', '?')}, SciPy {v.get('scipy', '?')}, Python "
        f"{v.get('python', '?')}.",
        *[f"- Data {what}: " + ", ".join(f"{k} {n:,}" for k, n in record[key].items()) + "."
          for key, what in (("data_rows", "rows"), ("data_requests", "requests (lists)")) if record.get(key)], "",
        "## Tables", "",
        "Mean ± sample std over seeds; the comparison is paired by seed against the setting's baseline (the vs "
        "column): diff = setting - baseline, d_z = mean(diff) / std(diff), p from the two-sided paired t-test, "
        "ratio (where the metric has one) = the lift `value / baseline - 1` or the drop `1 - value / baseline` of "
        "the means (the KDD paper's AUC lift and BCE drop ratios).", "",
        tables(rows, metrics)]
    figures = sorted(glob.glob(os.path.join(folder, "figures", "*.png")))
    if figures:
        lines += ["## Figures", "", "From the protocol's report of the same run (`tfrec experiment` writes them beside "
                  "its tables; each has its CSV there).", ""]
        lines += [f"![{os.path.basename(f)}]({name}/figures/{os.path.basename(f)})" for f in figures] + [""]
    lines.append(reading.rstrip() + "\n")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tfrec.experiments.core.results_doc", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    rec = sub.add_parser("record", help="copy one protocol's run records into <root>/<name>/")
    rec.add_argument("--experiment", required=True, help="the `tfrec experiment --out` directory")
    rec.add_argument("--protocol", required=True)
    rec.add_argument("--name", required=True, help="document name (docs/results/<name>.md)")
    rec.add_argument("--command", required=True, help="the exact command that made the run (shown in the document)")
    rec.add_argument("--host-load", dest="host_load", help="host_load.log sampled during the run")
    rec.add_argument("--reference", help="JSON of the papers' numbers the reading compares with")
    rec.add_argument("--cpus", type=int, default=os.cpu_count())
    rec.add_argument("--root", default=DEFAULT_ROOT)
    rec.add_argument("--figures", help="comma-separated PNG names of the protocol's report folder to copy into "
                                       "<root>/<name>/figures/ (shown in the document)")
    rec.add_argument("--complete-seeds", dest="complete_seeds", action="store_true",
                     help="keep only the seeds every setting has finished (a run stopped mid-seed)")
    ren = sub.add_parser("render", help="write <root>/<name>.md from the records and <name>/reading.md")
    ren.add_argument("--name", required=True)
    ren.add_argument("--root", default=DEFAULT_ROOT)
    args = parser.parse_args(argv)
    folder = os.path.join(args.root, args.name)
    if args.what == "record":
        shown, recorded = results_metrics(args.experiment, args.protocol)
        recorded = tuple(m for m in recorded if m not in shown)
        cells = cell_records(args.experiment, args.protocol, shown + recorded)
        if not cells:
            print(f"no finished cell of {args.protocol} under {args.experiment}", file=sys.stderr)
            return 1
        if args.complete_seeds:
            settings = {c["setting"] for c in cells}
            complete = {seed for seed in {c["seed"] for c in cells}
                        if {c["setting"] for c in cells if c["seed"] == seed} == settings}
            cells = [c for c in cells if c["seed"] in complete]
        record = run_record(args.experiment, args.protocol, args.command)
        record["metrics"] = {"shown": [metric_dict(m) for m in shown], "recorded": [metric_dict(m) for m in recorded]}
        if args.host_load:  # kept beside the records; the summary is of the copy
            os.makedirs(folder, exist_ok=True)
            shutil.copyfile(args.host_load, os.path.join(folder, "host_load.log"))
        record["host_load"] = host_load(os.path.join(folder, "host_load.log") if args.host_load else None)
        record["cpus"] = args.cpus
        old = _read(os.path.join(folder, "record.json")) or {}
        record["reference"] = json.loads(args.reference) if args.reference else old.get("reference", {})
        if args.figures:
            os.makedirs(os.path.join(folder, "figures"), exist_ok=True)
            for fig in (f.strip() for f in args.figures.split(",") if f.strip()):
                shutil.copyfile(os.path.join(args.experiment, args.protocol, fig), os.path.join(folder, "figures", fig))
        _write(os.path.join(folder, "cells.json"), cells)
        _write(os.path.join(folder, "record.json"), record)
        print(f"{len(cells)} cells -> {folder}")
        return 0
    text = render(args.name, args.root)
    with open(folder + ".md", "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {folder}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
