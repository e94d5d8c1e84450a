"""The ``tfrec`` command: demo, simulate, simulate-cascade, prepare, prepare-hybrid, train, evaluate, calibration,
export, item-embeddings, serve, predict, experiment, pipeline run.

Every command takes ``--config FILE.yaml`` and repeated ``--set section.key=value`` overrides (see
``tfrec.config``); its own flags are shorthands for config keys, bound to them by
:func:`tfrec.cli.common.flag_values`. Bad input exits non-zero with one line on stderr:
``tfrec <command>: error: <reason>`` (2 for usage and configuration errors and missing or unusable input, 1 for
failures while running). The libraries' start-up messages are hidden unless ``--verbose`` (:mod:`tfrec.quiet`).

One module per group of commands: :mod:`~tfrec.cli.data` (simulate, prepare), :mod:`~tfrec.cli.model` (train,
evaluate, calibration, export, item-embeddings), :mod:`~tfrec.cli.serving` (serve, predict),
:mod:`~tfrec.cli.pipeline`, :mod:`~tfrec.cli.experiment`, :mod:`~tfrec.cli.demo`; what they share is in
:mod:`~tfrec.cli.common`. This module wires their parsers and runs one.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

from tfrec.cli import data, demo, experiment, model, pipeline, serving
from tfrec.cli.common import RUN_ERROR, USAGE_ERROR, Parser, UsageError, package_version

__all__ = ["RUN_ERROR", "USAGE_ERROR", "build_parser", "main", "package_version"]

#: The commands in the order ``tfrec --help`` lists them, each with the function that adds its parser.
COMMANDS = (
    ("demo", demo.add_demo), ("simulate", data.add_simulate), ("prepare", data.add_prepare),
    ("train", model.add_train), ("evaluate", model.add_evaluate), ("calibration", model.add_calibration),
    ("serve", serving.add_serve), ("predict", serving.add_predict), ("export", model.add_export),
    ("item-embeddings", model.add_item_embeddings), ("pipeline", pipeline.add_pipeline),
    ("simulate-cascade", data.add_simulate_cascade), ("prepare-hybrid", data.add_prepare_hybrid),
    ("simulate-taobao", data.add_simulate_taobao), ("prepare-taobao", data.add_prepare_taobao),
    ("experiment", experiment.add_experiment),
)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="tfrec", description="Ranking-aware CTR models: data pipelines, training, evaluation.")
    parser.add_argument("--version", action="version", version=f"tfrec {package_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for _, add in COMMANDS:
        add(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    prog = f"tfrec {args.command}"
    try:
        from tfrec.quiet import import_quietly, noisy_modules

        import_quietly(noisy_modules(args.command), verbose=getattr(args, "verbose", False))
        return args.fn(args)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - every failure becomes one line; TFREC_DEBUG=1 shows the traceback
        if os.environ.get("TFREC_DEBUG"):
            raise
        code = USAGE_ERROR if _is_usage_error(e) else RUN_ERROR
        message = " ".join(str(e).split()) or type(e).__name__
        print(f"{prog}: error: {message}", file=sys.stderr)
        return code


def _is_usage_error(e: Exception) -> bool:
    from tfrec.config import ConfigError

    return isinstance(e, (ConfigError, UsageError, FileNotFoundError))
