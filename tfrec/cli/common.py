"""What every ``tfrec`` command shares: the parser class, the usage error and exit codes, the config flags
(``--config``, ``--set``), flags bound to config fields, the run's family, replicas and the table printer."""

from __future__ import annotations

import argparse
from typing import Any, Dict, Optional, Sequence

USAGE_ERROR = 2
RUN_ERROR = 1


class UsageError(ValueError):
    """A usage error: the command exits with :data:`USAGE_ERROR` and one line on stderr."""


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors; every parser takes ``--verbose`` (before or after the command)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                          help="also show the libraries' start-up messages (TensorFlow's CUDA plugin "
                               "registration lines, Beam's apitools warning), hidden by default")

    def error(self, message):  # noqa: D401 - argparse API
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def package_version() -> str:
    """The installed tfrec version (package metadata), or the source tree's when it is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tfrec")
    except PackageNotFoundError:
        from tfrec import __version__

        return __version__


def add_config_args(p: argparse.ArgumentParser) -> None:
    """``--config FILE.yaml`` and repeated ``--set section.key=value``."""
    import dataclasses

    from tfrec.config import RunConfig

    sections = ", ".join(f.name for f in dataclasses.fields(RunConfig))
    p.add_argument("--config", help=f"YAML config file (sections: {sections}; every key in tfrec/config/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set train.learning_rate=0.01 (repeatable)")


def flag_values(args: argparse.Namespace, mapping: Dict[str, str]) -> Dict[str, Any]:
    """The command's flags as a mapping of config sections: ``mapping`` binds a flag (its ``args`` attribute) to a
    config key (``section.key`` or ``section.sub.key``); a flag left unset (None) sets nothing. The values keep
    the types argparse gave them and go through the config's validation like the YAML file's
    (:func:`tfrec.config.load_sections`'s ``values``): applied after ``--config``, before ``--set``."""
    values: Dict[str, Any] = {}
    for attr, key in mapping.items():
        value = getattr(args, attr, None)
        if value is None:
            continue
        *sections, field = key.split(".")
        node = values
        for name in sections:
            node = node.setdefault(name, {})
        node[field] = list(value) if isinstance(value, (list, tuple)) else value
    return values


def load(args, mapping: Dict[str, str], base_yaml: Optional[str] = None):
    """The command's config: the defaults (or ``base_yaml``), ``--config``, the flags of ``mapping``, ``--set``."""
    from tfrec.config import load_config

    base = load_config(base_yaml) if base_yaml else None
    return load_config(args.config, list(args.overrides), base=base, values=flag_values(args, mapping))


def load_run(args, mapping: Dict[str, str]):
    """The config of a command that loads a finished run: its architecture from ``<model_dir>/config.yaml``; a
    setting that contradicts it is a usage error naming the key (``tfrec.run_config.load_for_run``)."""
    from tfrec.config import load_config
    from tfrec.run_config import load_for_run

    values, overrides = flag_values(args, mapping), list(args.overrides)
    model_dir = load_config(args.config, overrides, validate=False, values=values).train.model_dir
    return load_for_run(args.config, overrides, model_dir, values=values)


def run_family(cfg):
    """The family of the finished run in ``cfg.train.model_dir``, which must be the family of the dataset
    ``cfg.data.dir`` (:func:`tfrec.families.family_of_run`)."""
    from tfrec.families import family_of, family_of_run

    family = family_of_run(cfg.train.model_dir, cfg.data.dir)
    data = family_of(cfg.data.dir)
    if data is not family:
        raise UsageError(f"{cfg.train.model_dir} is a {family.name} run and {cfg.data.dir} a {data.name} dataset; "
                         "give the dataset the run trained on")
    return family


def configure_replicas(replicas: int) -> None:
    """First TensorFlow work of the process: split the CPU into logical devices for MirroredStrategy."""
    from tfrec.devices import configure_cpu_replicas

    configure_cpu_replicas(replicas)


def format_table(rows: Sequence) -> str:
    """``(label, value)`` rows as an aligned two-column table (floats to 5 places, ints with thousands commas)."""
    width = max(len(str(k)) for k, _ in rows)
    lines = []
    for k, v in rows:
        if isinstance(v, float):
            v = f"{v:.5f}"
        elif isinstance(v, int):
            v = f"{v:,}"
        lines.append(f"  {str(k):<{width}}  {v}")
    return "\n".join(lines)
