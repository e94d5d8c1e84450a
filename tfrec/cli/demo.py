"""``tfrec demo``: simulate click logs, prepare them with Beam, train DCN V2, evaluate (``tfrec.demo``)."""

from __future__ import annotations

import os

from tfrec.cli.common import add_config_args, configure_replicas, load


def _cmd_demo(args) -> int:
    from tfrec.demo import DEMO_CONFIG, run_demo

    cfg = load(args, {"rows": "simulation.rows", "replicas": "train.replicas", "epochs": "train.epochs"},
               base_yaml=DEMO_CONFIG)
    configure_replicas(cfg.train.replicas)
    run_demo(cfg, os.path.abspath(args.out))
    return 0


def add_demo(sub) -> None:
    p = sub.add_parser("demo", help="simulate click logs, prepare them with Beam, train DCN V2, evaluate")
    p.add_argument("--out", default="tfrec_demo", help="working directory of the demo (default: ./tfrec_demo)")
    p.add_argument("--rows", type=int, help="simulated rows (default 150000)")
    p.add_argument("--replicas", type=int, help="MirroredStrategy replicas (default 2)")
    p.add_argument("--epochs", type=int, help="training epochs (default 3)")
    add_config_args(p)
    p.set_defaults(fn=_cmd_demo)
