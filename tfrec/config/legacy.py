"""Config keys of the previous release, read for one more release with a one-line deprecation message.

The previous layout had one flat ``model`` section for DCN V2 and the multi-task models, the DCN V2 loss as a
top-level ``loss`` section, the multi-task loss as ``model.pwiser_*`` and the Three-Tower model, its loss weights,
its list sizes and its report K values in one ``preranking`` section. :func:`upgrade` rewrites a mapping in that
layout (a YAML file, ``--set`` overrides, a Trainer's ``custom_config``, a finished run's ``config.yaml``) into the
current one:

* ``loss.name``, ``loss.params`` -> ``model.loss.name``, ``model.loss.params`` (DCN V2);
* ``model.pwiser_tasks``, ``model.pwiser_lambda``, ``_m1``, ``_m2``, ``_space``, ``_pairing`` ->
  ``model.loss.pwiser_tasks``, ``model.loss.lam``, ``m1``, ``m2``, ``space``, ``pairing`` (multi-task models);
* ``preranking.variant``, ``tasks``, ``hash_bins``, ``embedding_dim``, ``embedding_l2``, ``num_experts``,
  ``expert_units``, ``item_units``, ``cross_units``, ``output_dim`` -> ``model.*`` with ``model.name: three_tower``;
* ``preranking.task_weights``, ``global_weight``, ``alpha``, ``neg_weight``, ``margin``, ``temperature``,
  ``beta_init``, ``beta_scale``, ``beta_final``, ``beta_final_at``, ``in_batch_rate``, ``copr_weight``,
  ``copr_reg_weight``, ``copr_chunk_size``, ``copr_relax_units``, ``rethink_weight``, ``rethink_distill_weight``
  -> ``model.loss.*`` of ``three_tower``.

Keys of the old flat ``model`` section that the chosen model does not read (they were ignored then) are dropped;
values equal to the previous defaults in a previous ``config.yaml`` (which holds every key) are dropped silently,
the others are named in the message. ``preranking`` model keys become the model only when the ``model`` section is
absent or at its defaults (as a pre-ranking run wrote it); else they were ignored then and are dropped.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, Dict, List, Mapping, Optional, Tuple

from tfrec.config.base import ConfigError, note

#: The previous flat ``model`` section's defaults (DCN V2 and multi-task keys).
OLD_MODEL = {
    "name": "dcn_v2", "structure": "parallel", "num_cross_layers": 3, "cross_low_rank": 0,
    "dnn_hidden_units": [500, 500, 500], "embedding_dim": 10, "dropout": 0.1, "embedding_l2": 1e-5, "net_l2": 0.0,
    "batch_norm": False, "head": "binary", "tasks": ["ctr", "cvr"], "task": "ctr", "tower_units": [64],
    "bottom_units": [128], "num_experts": 4, "expert_units": [64], "num_levels": 2, "num_shared_experts": 2,
    "num_task_experts": 2, "pwiser_tasks": [], "pwiser_lambda": 0.1, "pwiser_m1": 0.1, "pwiser_m2": 0.2,
    "pwiser_space": "probability", "pwiser_pairing": "replica"}
#: ``model.pwiser_*`` -> the multi-task loss section's key.
PWISER = {"pwiser_tasks": "pwiser_tasks", "pwiser_lambda": "lam", "pwiser_m1": "m1", "pwiser_m2": "m2",
          "pwiser_space": "space", "pwiser_pairing": "pairing"}
OLD_LOSS = {"name": "weighted_bce", "params": {}}
#: The previous ``preranking`` section's model keys and their defaults.
OLD_THREE_TOWER = {"variant": "hccp", "tasks": ["click", "purchase", "diversity"], "hash_bins": 20000,
                   "embedding_dim": 16, "embedding_l2": 0.0, "num_experts": 8, "expert_units": [64],
                   "item_units": [64], "cross_units": [32], "output_dim": 32}
#: The previous ``preranking`` section's loss keys and their defaults.
OLD_THREE_TOWER_LOSS = {"task_weights": [0.98, 0.2, 0.1], "global_weight": 0.05, "alpha": 0.05, "neg_weight": 0.5,
                        "margin": 0.9, "temperature": 0.1, "beta_init": 9999.0, "beta_scale": None,
                        "beta_final": None, "beta_final_at": None, "in_batch_rate": 0.05, "copr_weight": 1.0,
                        "copr_reg_weight": 0.1, "copr_chunk_size": 1, "copr_relax_units": [16],
                        "rethink_weight": 1.0, "rethink_distill_weight": 1.0}
#: Every key some previous model section had (kept when a model name changes, see ``tfrec.config.run``).
LEGACY_MODEL_KEYS = frozenset(PWISER)


def is_legacy(raw: Mapping[str, Any]) -> bool:
    """Whether ``raw`` has a key of the previous layout."""
    model = raw.get("model") if isinstance(raw.get("model"), Mapping) else {}
    pre = raw.get("preranking") if isinstance(raw.get("preranking"), Mapping) else {}
    return ("loss" in raw or any(k in model for k in PWISER)
            or any(k in pre for k in {**OLD_THREE_TOWER, **OLD_THREE_TOWER_LOSS}))


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return float(a) == float(b)
    return a == b


def _untouched(model: Mapping[str, Any], model_classes: Mapping[str, Any]) -> bool:
    """Whether a ``model`` mapping is DCN V2 at its defaults (of the previous or the current layout)."""
    current = dataclasses.asdict(model_classes["dcn_v2"]())
    return all(_same(v, OLD_MODEL.get(k, current.get(k, object()))) or _same(v, current.get(k, object()))
               for k, v in model.items())


def upgrade(raw: Dict[str, Any], where: str, model_classes: Mapping[str, Any],
            context: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """``raw`` (a config mapping) in the current layout (module docstring); prints one deprecation line naming
    what moved and what was dropped.

    Args:
      raw: the mapping (not changed).
      where: where it came from, for the message (a file, ``--set``).
      model_classes: model name -> section class (``tfrec.config.models.MODELS``).
      context: the config mapping ``raw`` is merged into (its model decides where old keys go).

    Raises:
      ConfigError: ``loss`` set to another loss than ``weighted_bce`` for a model that computes its own.
    """
    if not is_legacy(raw):
        return raw
    out = copy.deepcopy(raw)
    moved: List[Tuple[str, str]] = []
    dropped: List[str] = []
    model = out.get("model") if isinstance(out.get("model"), dict) else None
    known = dict((context or {}).get("model") or {})
    known.update(model or {})
    pre = out.get("preranking") if isinstance(out.get("preranking"), dict) else {}
    # The Three-Tower model of the preranking section, when the model section is absent or at its old defaults.
    old_tt = {k: pre.pop(k) for k in list(pre) if k in OLD_THREE_TOWER}
    old_tt_loss = {k: pre.pop(k) for k in list(pre) if k in OLD_THREE_TOWER_LOSS}
    # A previous config.yaml holds every key: its defaults go silently. A user's file or --set is told of each.
    dump = isinstance(model, dict) and set(OLD_MODEL) <= set(model)
    custom_tt = {k: v for k, v in old_tt.items() if not _same(v, OLD_THREE_TOWER[k])}
    custom_tt_loss = {k: v for k, v in old_tt_loss.items() if not _same(v, OLD_THREE_TOWER_LOSS[k])}
    if not dump:
        moved += [(f"preranking.{k}", f"model.{k}") for k in old_tt if k not in custom_tt]
        moved += [(f"preranking.{k}", f"model.loss.{k}") for k in old_tt_loss if k not in custom_tt_loss]
    three_tower = known.get("name") == "three_tower"
    if (custom_tt or custom_tt_loss) and (three_tower or _untouched(known, model_classes)):
        base = model if model is not None and three_tower else {"name": "three_tower"}
        model = out["model"] = {**custom_tt, **base, "loss": {**custom_tt_loss, **base.get("loss", {})}}
        known = model
        moved += [(f"preranking.{k}", f"model.{k}") for k in custom_tt]
        moved += [(f"preranking.{k}", f"model.loss.{k}") for k in custom_tt_loss]
    else:
        dropped += [f"preranking.{k}" for k in {**custom_tt, **custom_tt_loss}]
    name = known.get("name", "dcn_v2")
    fields = {f for f in getattr(model_classes.get(name), "__dataclass_fields__", {})}
    loss = out.pop("loss", None)
    if model is not None:
        pwiser = {PWISER[k]: model.pop(k) for k in list(model) if k in PWISER}
        if "loss" in fields and pwiser and name != "dcn_v2" and name != "three_tower":
            model["loss"] = {**pwiser, **model.get("loss", {})}
            moved += [(f"model.{k}", f"model.loss.{v}") for k, v in PWISER.items() if v in pwiser]
        else:
            dropped += [f"model.{k}" for k, v in PWISER.items() if v in pwiser and not _same(pwiser[v], OLD_MODEL[k])]
        for k in [k for k in model if k in OLD_MODEL and k not in fields]:
            value = model.pop(k)
            if not _same(value, OLD_MODEL[k]):
                dropped.append(f"model.{k}")
    if isinstance(loss, dict):
        if name == "dcn_v2":
            out.setdefault("model", {})
            out["model"]["loss"] = {**loss, **out["model"].get("loss", {})}
            moved += [(f"loss.{k}", f"model.loss.{k}") for k in loss]
        elif loss.get("name", "weighted_bce") != "weighted_bce" or loss.get("params"):
            raise ConfigError(f"`loss.name` must stay weighted_bce for model {name!r}: it computes its own loss "
                              f"(model.loss). Received: loss.name={loss.get('name')!r}")
    if moved or dropped:
        parts = ([", ".join(f"{a} -> {b}" for a, b in moved)] if moved else [])
        parts += ([f"ignored: {', '.join(dropped)} (not settings of model {name!r})"] if dropped else [])
        note(f"deprecated config keys in {where}: {'; '.join(parts)}; the old keys are read for one more release")
    return out
