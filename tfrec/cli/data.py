"""The data commands: ``simulate``, ``prepare``, ``simulate-cascade``, ``prepare-hybrid``, ``simulate-taobao``,
``prepare-taobao``.

``tfrec prepare`` runs the Criteo and multi-task Beam pipelines from the command line.

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

from tfrec.cli.common import UsageError, add_config_args, format_table, load
from tfrec.config import ConfigError, PrepareConfig


def _cmd_simulate(args) -> int:
    from tfrec.simulation import simulate, simulate_funnel

    cfg = load(args, {"out": "simulation.output", "rows": "simulation.rows", "seed": "simulation.seed",
                      "positive_rate": "simulation.positive_rate", "kind": "simulation.kind",
                      "noisy_click_share": "simulation.funnel.noisy_click_share"})
    if not cfg.simulation.output:
        raise UsageError("no output path given (--out or simulation.output)")
    if cfg.simulation.kind == "funnel":
        r = simulate_funnel(cfg.simulation)
        print(f"wrote {r.rows:,} exposures (AliExpress CSV) to {r.output_path}: click rate {r.click_rate:.4f}, "
              f"conversions per click {r.conversion_rate:.4f}, noisy clicks {r.noisy_click_share:.3f} of clicks; "
              f"Bayes AUC ctr {r.truth_ctr_auc:.4f} cvr {r.truth_cvr_auc:.4f} ctcvr {r.truth_ctcvr_auc:.4f} "
              f"(truth: {r.truth_path})")
        return 0
    result = simulate(cfg.simulation, strip_trailing_share=args.strip_trailing_share)
    print(f"wrote {cfg.simulation.rows:,} rows to {cfg.simulation.output} (truth: {result.truth_path})")
    return 0


def _cmd_prepare(args) -> int:
    cfg = load(args, {"input": "prepare.inputs", "train": "prepare.train", "valid": "prepare.valid",
                      "test": "prepare.test", "out": "prepare.output", "format": "prepare.input_format",
                      "beta_pos": "prepare.beta_pos", "min_count": "prepare.min_count",
                      "runner": "prepare.runner"})
    if args.beam_args:
        cfg.prepare.beam_args = list(cfg.prepare.beam_args) + list(args.beam_args)
    if args.progress_every < 0:
        raise UsageError(f"--progress-every must be >= 0. Received: --progress-every={args.progress_every}")
    run_prepare(cfg.prepare, lambda line: print(line, flush=True), args.progress_every)
    return 0


def _cmd_simulate_cascade(args) -> int:
    from tfrec.simulation.cascade import simulate_cascade

    cfg = load(args, {"out": "cascade.output", "requests": "cascade.requests", "seed": "cascade.seed"})
    if not cfg.cascade.output:
        raise UsageError("no output directory given (--out or cascade.output)")
    m = simulate_cascade(cfg.cascade)
    acc = m["ranking_pairwise_accuracy"]
    print(f"wrote {m['requests']:,} requests to {cfg.cascade.output} (requests.jsonl, items.jsonl, meta.json)\n"
          + format_table([("impressions per request", m["impressions_per_request"]["mean"]),
                          ("click rate", m["click_rate"]), ("purchases per click", m["purchase_per_click"]),
                          ("ranking order accuracy, head items", acc["q0"]),
                          ("ranking order accuracy, tail items", acc["q4"]),
                          ("all-scenario clicks differ", m["all_scenario_clicks_differ"])]))
    return 0


def _cmd_prepare_hybrid(args) -> int:
    from pipelines.hybrid_samples import run

    cfg = load(args, {"input": "hybrid.inputs", "items": "hybrid.items", "out": "hybrid.output",
                      "runner": "hybrid.runner"})
    if args.beam_args:
        cfg.hybrid.beam_args = list(cfg.hybrid.beam_args) + list(args.beam_args)
    if not cfg.hybrid.inputs or not cfg.hybrid.items:
        raise UsageError("give the request logs (--input or hybrid.inputs) and the item table (--items or "
                         "hybrid.items)")
    if not cfg.hybrid.output:
        raise UsageError("no output directory given (--out or hybrid.output)")
    stats = run(cfg.hybrid)
    rows = [("requests in", stats["requests_in"]), ("requests rejected", stats["requests_rejected"])]
    rows += [(f"requests {s}", stats["requests_written"][s]) for s in ("train", "valid", "test")]
    rows += [("items in", stats["items_in"]), ("items rejected", stats["items_rejected"])]
    if stats["items_duplicate"]:
        rows.append(("items duplicated (one kept)", stats["items_duplicate"]))
    rows += [(f"items {t} (train)", n) for t, n in stats["items_per_sample_type"]["train"].items()]
    print(f"prepared {cfg.hybrid.output}\n" + format_table(rows))
    return 0


def _cmd_simulate_taobao(args) -> int:
    from tfrec.simulation.taobao import simulate_taobao

    cfg = load(args, {"out": "taobao_sim.output", "rows": "taobao_sim.impressions", "layout": "taobao_sim.layout",
                      "seed": "taobao_sim.seed"})
    if not cfg.taobao_sim.output:
        raise UsageError("no output directory given (--out or taobao_sim.output)")
    m = simulate_taobao(cfg.taobao_sim)
    print(f"wrote {cfg.taobao_sim.impressions:,} impressions ({cfg.taobao_sim.layout} layout, simulated) to "
          f"{cfg.taobao_sim.output}: click rate {m['click_rate']:.4f}, AUC of the true click probability "
          f"{m['true_probability_auc']:.4f}")
    return 0


def _cmd_prepare_taobao(args) -> int:
    from tfrec.experiments.hccp.taobao import prepare_taobao

    cfg = load(args, {"raw_sample": "taobao.raw_sample", "ad_feature": "taobao.ad_feature",
                      "user_profile": "taobao.user_profile", "behavior_log": "taobao.behavior_log",
                      "joined": "taobao.joined", "runner": "taobao.runner"})
    if bool(cfg.taobao.raw_sample) == bool(cfg.taobao.joined):
        raise UsageError("give the Alibaba files (--raw-sample, --ad-feature, optional --user-profile and "
                         "--behavior-log) or the pre-joined file (--joined)")
    lists = prepare_taobao(cfg, args.out)
    print(f"prepared {lists}\nrun: tfrec experiment hccp-taobao --data {lists} --out <dir>")
    return 0


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
    rows = [("rows in", stats["rows_in"]), ("rows rejected", stats["rows_rejected"])]
    rows += [(f"rows {s}", stats["rows_written"].get(s, 0)) for s in ("train", "valid", "test")]
    for label, key in rates:
        value = stats[key].get("train")
        rows.append((label, "n/a (empty split)" if value is None else value))
    return f"prepared {output} in {wall_seconds:.1f} s\n" + format_table(rows)


def add_simulate(sub) -> None:
    p = sub.add_parser("simulate", help="write Criteo-shaped click logs (Kaggle train.txt format) with known truth")
    p.add_argument("--out", help="train.txt path to write")
    p.add_argument("--rows", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--positive-rate", dest="positive_rate", type=float)
    p.add_argument("--strip-trailing-share", dest="strip_trailing_share", type=float, default=0.0,
                   help="share of lines whose trailing empty fields are stripped")
    p.add_argument("--kind", choices=["criteo", "funnel"],
                   help="criteo (click logs, default) or funnel (click -> conversion with noisy clicks, AliExpress "
                        "CSV layout; settings under simulation.funnel)")
    p.add_argument("--noisy-click-share", dest="noisy_click_share", type=float,
                   help="funnel: share of clicks that are noise and never convert")
    add_config_args(p)
    p.set_defaults(fn=_cmd_simulate)


def add_prepare(sub) -> None:
    p = sub.add_parser("prepare", help="Criteo TSV/CSV or AliExpress / Ali-CCP CSV -> validated, split, weighted "
                                       "TFRecords (Apache Beam)",
                       epilog="Exit status: 0 done; 2 usage, config or unusable input (a missing file, a directory, "
                              "an archive, a header that does not fit the format, --train without --valid, a file "
                              "in two splits); 1 the run failed or wrote no usable training data (no rows, every row "
                              "rejected, an empty train or valid split).")
    p.add_argument("--input", nargs="+", help="input files or globs (split 7:2:1 by hash)")
    p.add_argument("--train", nargs="+", help="train files (instead of --input; needs --valid)")
    p.add_argument("--valid", nargs="+", help="validation files (required with --train)")
    p.add_argument("--test", nargs="+", help="test files (optional with --train / --valid)")
    p.add_argument("--out", help="output directory")
    p.add_argument("--format", choices=["auto", "kaggle", "x1", "aliexpress", "aliccp"],
                   help="Criteo: auto, kaggle, x1; multi-task (click, conversion): aliexpress, aliccp")
    p.add_argument("--beta-pos", dest="beta_pos", type=float, help="weight of positives (KDD 2024 Eq. 15)")
    p.add_argument("--min-count", dest="min_count", type=int, help="vocabulary min count on the train split")
    p.add_argument("--runner", help="Beam runner (default DirectRunner)")
    p.add_argument("--progress-every", dest="progress_every", type=float, default=5.0, metavar="SECONDS",
                   help="a progress line (rows read, written, rejected) every SECONDS while Beam runs (default 5; "
                        "0: none)")
    p.add_argument("beam_args", nargs="*", help="after --: extra Beam pipeline options")
    add_config_args(p)
    p.set_defaults(fn=_cmd_prepare)


def add_simulate_cascade(sub) -> None:
    p = sub.add_parser("simulate-cascade", help="write recommendation-cascade logs (retrieval -> exposure -> "
                                                "clicks, purchases) for HCCP pre-ranking data")
    p.add_argument("--out", help="output directory")
    p.add_argument("--requests", type=int)
    p.add_argument("--seed", type=int)
    add_config_args(p)
    p.set_defaults(fn=_cmd_simulate_cascade)


def add_prepare_hybrid(sub) -> None:
    p = sub.add_parser("prepare-hybrid", help="cascade logs -> HCCP hybrid samples, one ExampleListWithContext "
                                              "per request (Apache Beam)")
    p.add_argument("--input", nargs="+", help="request log files or globs (requests.jsonl)")
    p.add_argument("--items", nargs="+", help="item table files or globs (items.jsonl)")
    p.add_argument("--out", help="output directory")
    p.add_argument("--runner", help="Beam runner (default DirectRunner)")
    p.add_argument("beam_args", nargs="*", help="after --: extra Beam pipeline options")
    add_config_args(p)
    p.set_defaults(fn=_cmd_prepare_hybrid)


def add_simulate_taobao(sub) -> None:
    p = sub.add_parser("simulate-taobao", help="write simulated files in the Taobao display-ad log's layouts "
                                               "(raw_sample.csv, ad_feature.csv, ...; clicks depend on history)")
    p.add_argument("--out", help="output directory")
    p.add_argument("--rows", type=int, help="impressions (raw_sample.csv rows)")
    p.add_argument("--layout", choices=("alibaba", "joined", "both"))
    p.add_argument("--seed", type=int)
    add_config_args(p)
    p.set_defaults(fn=_cmd_simulate_taobao)


def add_prepare_taobao(sub) -> None:
    p = sub.add_parser("prepare-taobao", help="the Taobao display-ad log (either layout) -> requests, DIN, "
                                              "HCCP lists under --out (for `tfrec experiment hccp-taobao`)")
    p.add_argument("--raw-sample", dest="raw_sample", nargs="+", help="raw_sample.csv files or globs")
    p.add_argument("--ad-feature", dest="ad_feature", nargs="+", help="ad_feature.csv")
    p.add_argument("--user-profile", dest="user_profile", nargs="+", help="user_profile.csv (optional)")
    p.add_argument("--behavior-log", dest="behavior_log", nargs="+", help="behavior_log.csv (optional: history)")
    p.add_argument("--joined", nargs="+", help="the pre-joined FuxiCTR CSV (instead of the Alibaba files)")
    p.add_argument("--out", required=True, help="output directory (raw/, requests/, din/, lists/)")
    p.add_argument("--runner", help="Beam runner (default DirectRunner)")
    add_config_args(p)
    p.set_defaults(fn=_cmd_prepare_taobao)
