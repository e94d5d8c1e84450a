"""``tfrec experiment``: an experiment protocol over settings and seeds (``tfrec.experiments``)."""

from __future__ import annotations

import dataclasses
from typing import Optional

from tfrec.cli.common import UsageError, add_config_args, configure_replicas, load
from tfrec.cli.experiment_alpha import check_alpha, check_loss_params, override_loss_keys, parse_alpha


def _cmd_experiment(args) -> int:
    from tfrec.experiments import Options, get, names, run_protocol, seeds_of

    if args.seeds < 1:
        raise UsageError(f"--seeds must be >= 1. Received: --seeds={args.seeds}")
    if args.beta_pos is not None and not 0.0 < args.beta_pos <= 1.0:
        raise UsageError(f"--beta-pos must be in (0, 1]. Received: --beta-pos={args.beta_pos}")
    if args.buckets < 1:
        raise UsageError(f"--buckets must be >= 1. Received: --buckets={args.buckets}")
    data = args.data
    if not data and not args.quick:
        raise UsageError("no dataset given (--data DIR, a `tfrec prepare` output; or --quick to simulate one)")
    chosen = names() if args.protocol == "all" else [args.protocol]
    values = tuple(float(v) for v in args.values.split(",")) if args.values else None
    opts = Options(beta_pos=0.1 if args.beta_pos is None else args.beta_pos, values=values, quick=args.quick,
                   buckets=args.buckets)
    if args.alpha is not None:
        alphas = parse_alpha(args.alpha)
        check_alpha(args.alpha, alphas, [get(name) for name in chosen], opts)
        opts = dataclasses.replace(opts, alphas=alphas)
    for name in chosen:  # before the config's own check of the loss params (which names no way out)
        check_loss_params(override_loss_keys(args.overrides), get(name), opts)
    configs = {name: experiment_config(args, get(name)) for name in chosen}
    for name in chosen:  # --config's loss params (a family's loss config without ``params`` has none to check)
        params = getattr(configs[name].model.loss, "params", None) or {}
        check_loss_params([f"model.loss.params.{k}" for k in sorted(params)], get(name), opts)
    # First TensorFlow work of the process: as many logical CPU devices as any chosen protocol's config wants.
    configure_replicas(max(cfg.train.replicas for cfg in configs.values()))
    only = [s for s in args.settings.split(",") if s] if args.settings else None
    ran = 0
    for name in chosen:
        run_data = experiment_data(args, get(name), configs[name], data)
        if run_data is not None:
            run_protocol(name, run_data, seeds_of(args.seeds), args.out, configs[name], opts, only=only)
            ran += 1
    if not ran:
        raise UsageError(f"no protocol runs on the dataset {data}")
    return 0


def experiment_config(args, protocol):
    """The base config of ``protocol``: with --quick its own quick preset, then --config and --set."""
    if args.quick and not protocol.quick_config:
        raise UsageError(f"protocol {protocol.name!r} has no --quick preset; give --data")
    return load(args, {}, base_yaml=protocol.quick_config if args.quick else None)


def experiment_data(args, protocol, cfg, data: Optional[str]) -> Optional[str]:
    """The dataset ``protocol`` runs on: with --quick and no --data, its own simulated one; with `all` and --data,
    None for a protocol whose kind of dataset that is not (it is skipped, with a line saying so)."""
    from tfrec.data import DatasetError
    from tfrec.families import get

    if data is None:
        if protocol.quick_data is None:
            raise UsageError(f"protocol {protocol.name!r} makes no --quick dataset; give --data")
        return protocol.quick_data(cfg, args.out)
    if args.protocol == "all":
        try:
            get(protocol.family).check_dataset(data)
        except (DatasetError, KeyError, ValueError) as e:
            print(f"{protocol.name}: skipped, {data} is not its kind of dataset ({' '.join(str(e).split())})")
            return None
    return data


def add_experiment(sub) -> None:
    from tfrec.experiments import names as protocol_names

    p = sub.add_parser("experiment", help="an experiment protocol (KDD 2024 losses, PWiseR multi-task, HCCP "
                                          "pre-ranking) over settings and seeds: tables, plots, run record "
                                          "(resumable)")
    p.add_argument("protocol", choices=protocol_names() + ["all"], help="the protocol to run (all: every one)")
    p.add_argument("--data", help="prepared dataset directory (omit with --quick to simulate one)")
    p.add_argument("--seeds", type=int, default=5, help="seeds 2020, 2021, ... (default 5, the paper's 2020-2024)")
    p.add_argument("--out", required=True, help="experiment directory (cells, runs, one report folder per protocol)")
    p.add_argument("--quick", action="store_true",
                   help="simulated data, small model, thinned sweeps (tfrec/configs/experiment_quick.yaml)")
    p.add_argument("--beta-pos", dest="beta_pos", type=float,
                   help="beta_pos of every protocol but sparsity (default 0.1)")
    p.add_argument("--values", help="comma-separated values of the protocol's sweep (beta_pos, alpha, gamma, keep "
                                    "ratio) instead of the paper's")
    p.add_argument("--alpha", help="the alpha of the combined losses instead of the authors' table (KDD_ALPHAS): "
                                   "0.7 for every loss, or per loss, combined_pair=0.7,jrc=0.4 (the others keep "
                                   "the table)")
    p.add_argument("--settings", help="comma-separated setting names to run (default: all of the protocol's)")
    p.add_argument("--buckets", type=int, default=45, help="pCTR buckets of the calibration plot (default 45)")
    add_config_args(p)
    p.set_defaults(fn=_cmd_experiment)
