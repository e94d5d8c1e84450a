"""The family registry, and the one place that decides which family a dataset, a run or a model belongs to.

* :func:`family_of` reads a prepared dataset's ``schema.json`` and returns the family its ``kind`` names.
* :func:`family_of_run` reads a finished run's ``<model_dir>/config.yaml`` and returns the family of the model it
  trained.
* :func:`family_of_model` returns the family of a built tfrec model (its class's ``family``).
* :func:`kind_of` is the compatibility reading of a ``schema.json`` written before the ``kind`` key held a family
  name: an absent ``kind`` is a point-wise dataset, unless its ``format`` names ``ExampleListWithContext`` (the
  hybrid samples of pre-ranking); older names of the families (:data:`ALIASES`) map to theirs.

The built-in families (:data:`BUILTIN`) register when the registry is first asked; another family registers with
:func:`register` (a module with a :class:`tfrec.families.base.Family` subclass and one ``register`` call).
"""

from __future__ import annotations

import importlib
import json
import os
from typing import Dict, List, Mapping

#: The modules of the built-in families, imported (and so registered) on the first lookup.
BUILTIN = ("tfrec.families.pointwise", "tfrec.families.multitask", "tfrec.families.preranking")
#: Older names of the families (``pipeline.family`` values and schema kinds of earlier releases) -> the name.
ALIASES: Dict[str, str] = {"criteo": "pointwise", "ctr": "pointwise", "hybrid": "preranking",
                           "listwise": "preranking"}
#: The ``schema.json`` file of a prepared dataset.
SCHEMA_FILE = "schema.json"

_REGISTRY: Dict[str, object] = {}
_LOADED = False


def _load_builtin() -> None:
    global _LOADED
    if not _LOADED:
        _LOADED = True
        for module in BUILTIN:
            importlib.import_module(module)


def register(family):
    """Adds ``family`` (a :class:`tfrec.families.base.Family`) under its name; a second family with the same name,
    or one that claims a model another family owns, is an error. Returns ``family``."""
    name = family.name
    if name in _REGISTRY and _REGISTRY[name] is not family:
        raise ValueError(f"a family named {name!r} is already registered")
    for other in _REGISTRY.values():
        taken = set(other.models) & set(family.models) if other is not family else set()
        if taken:
            raise ValueError(f"family {name!r} claims model(s) {sorted(taken)} of family {other.name!r}")
    _REGISTRY[name] = family
    return family


def names() -> List[str]:
    """The registered family names, built-in families first."""
    _load_builtin()
    return list(_REGISTRY)


def canonical(name: str) -> str:
    """``name`` with an older family name (:data:`ALIASES`) replaced by the family's own."""
    return ALIASES.get(name, name)


def get(name: str):
    """The family called ``name`` (an older name of :data:`ALIASES` is accepted).

    Raises:
      ValueError: no such family (the message lists the known ones).
    """
    _load_builtin()
    family = _REGISTRY.get(canonical(name))
    if family is None:
        raise ValueError(f"unknown family {name!r}; known families: {', '.join(_REGISTRY)}")
    return family


def family_of_model_name(model_name: str):
    """The family that owns the model ``model_name`` (``dcn_v2``, ``mmoe``, ``three_tower``, ...).

    Raises:
      ValueError: no family has that model.
    """
    _load_builtin()
    for family in _REGISTRY.values():
        if model_name in family.models:
            return family
    known = [m for f in _REGISTRY.values() for m in f.models]
    raise ValueError(f"unknown model {model_name!r}; known models: {', '.join(known)}")


def family_of_format(input_format: str):
    """The family whose Beam pipeline reads the raw format ``input_format`` (``prepare.input_format``: ``auto``,
    ``kaggle``, ``x1`` point-wise; ``aliexpress``, ``aliccp`` multi-task).

    Raises:
      ValueError: no family reads it.
    """
    _load_builtin()
    for family in _REGISTRY.values():
        if input_format in family.formats:
            return family
    known = [f for family in _REGISTRY.values() for f in family.formats]
    raise ValueError(f"no family reads the input format {input_format!r}; known formats: {', '.join(known)}")


def kind_of(schema: Mapping[str, object]) -> str:
    """The family name of a ``schema.json`` object, reading the layouts of earlier releases too (module
    docstring). An unknown ``kind`` is returned as it is (:func:`get` reports it)."""
    kind = schema.get("kind")
    if kind:
        return canonical(str(kind))
    if "ExampleListWithContext" in str(schema.get("format", "")):
        return "preranking"
    return "pointwise"


def read_schema_json(data_dir: str) -> Dict[str, object]:
    """The ``schema.json`` object of a prepared dataset.

    Raises:
      tfrec.data.DatasetError: no directory given, the directory or its ``schema.json`` is missing or unreadable.
    """
    from tfrec.errors import DatasetError

    if not data_dir:
        raise DatasetError("no dataset directory given (data.dir / --data)")
    if not os.path.isdir(data_dir):
        raise DatasetError(f"prepared dataset directory not found: {data_dir}")
    path = os.path.join(data_dir, SCHEMA_FILE)
    if not os.path.exists(path):
        raise DatasetError(f"schema.json not found in {data_dir} (is it a prepared dataset directory?)")
    try:
        with open(path, "r", encoding="utf-8") as f:
            obj = json.load(f)
    except (OSError, ValueError) as e:
        raise DatasetError(f"{path} is not readable: {' '.join(str(e).split())}") from None
    if not isinstance(obj, dict):
        raise DatasetError(f"{path} is not a schema (a JSON object)")
    return obj


def family_of(data_dir: str):
    """The family of the prepared dataset in ``data_dir`` (from its ``schema.json``, see :func:`kind_of`).

    Raises:
      tfrec.data.DatasetError: the dataset or its schema is missing, or its kind is no registered family.
    """
    from tfrec.errors import DatasetError

    kind = kind_of(read_schema_json(data_dir))
    try:
        return get(kind)
    except ValueError as e:
        raise DatasetError(f"{data_dir}/schema.json: {e}") from None


def family_of_model(model):
    """The family of a built tfrec model (the ``family`` its class declares; every
    :class:`tfrec.models.RankingModel` does)."""
    name = getattr(model, "family", None)
    if not name:
        raise ValueError(f"{type(model).__name__} declares no family (a tfrec model subclasses "
                         "tfrec.models.RankingModel)")
    return get(name)


def family_of_run(model_dir: str, data_dir: str = ""):
    """The family of the finished run in ``model_dir``: the family of the model its saved ``config.yaml``
    names. A run without ``config.yaml`` (written by another tool), or whose config predates the families
    (:func:`tfrec.config.legacy.is_legacy`), is the family of ``data_dir``'s dataset.

    Raises:
      tfrec.config.ConfigError: the saved config is not readable.
      tfrec.data.DatasetError: no saved model name and no readable dataset.
    """
    from tfrec.run_config import saved_model_name

    name = saved_model_name(model_dir)
    return family_of_model_name(name) if name else family_of(data_dir)
