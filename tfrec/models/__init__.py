"""tfrec's row models, built by name from their ``model`` config section (:mod:`tfrec.config.models`) and a prepared
dataset.

The model's family (``tfrec.families``) checks that it fits the dataset before it is built
(:func:`tfrec.train.build_model`); the pre-ranking model is :mod:`tfrec.models.preranking`."""

from __future__ import annotations

import os
from typing import Callable, Dict, List

from tfrec.features import PointwiseSchema
from tfrec.models.base import RankingModel
from tfrec.models.ctr import DCNv2
from tfrec.models.multitask import ESMM, MMoE, PLE, MultiTaskModel, SharedBottom, SingleTask

__all__ = ["DCNv2", "ESMM", "MMoE", "MultiTaskModel", "PLE", "RankingModel", "SharedBottom", "SingleTask", "build",
           "load_vocabularies", "names"]


def load_vocabularies(data_dir: str, fields) -> Dict[str, List[str]]:
    """Reads ``<data_dir>/vocab/<field>.txt`` (one token per line) for each field."""
    out: Dict[str, List[str]] = {}
    for field in fields:
        path = os.path.join(data_dir, "vocab", f"{field}.txt")
        if not os.path.exists(path):
            raise FileNotFoundError(f"vocabulary file not found: {path}")
        with open(path, "r", encoding="utf-8") as f:
            out[field] = [line.rstrip("\n") for line in f if line.rstrip("\n")]
    return out


def _build_dcn_v2(cfg, schema: PointwiseSchema, vocabularies, transform) -> RankingModel:
    return DCNv2(dense=schema.dense, categorical=schema.categorical, vocabularies=vocabularies,
                 transform=transform, embedding_dim=cfg.embedding_dim, embedding_l2=cfg.embedding_l2,
                 structure=cfg.structure, num_cross_layers=cfg.num_cross_layers,
                 cross_low_rank=cfg.cross_low_rank, dnn_hidden_units=cfg.dnn_hidden_units, dropout=cfg.dropout,
                 net_l2=cfg.net_l2, batch_norm=cfg.batch_norm, head=cfg.head, name="dcn_v2")


def _multitask_args(cfg, schema, vocabularies, transform) -> Dict[str, object]:
    loss = cfg.loss
    return dict(dense=schema.dense, categorical=schema.categorical, vocabularies=vocabularies,
                transform=transform, embedding_dim=cfg.embedding_dim, embedding_l2=cfg.embedding_l2,
                tower_units=cfg.tower_units, dropout=cfg.dropout, batch_norm=cfg.batch_norm, net_l2=cfg.net_l2,
                pwiser_tasks=loss.pwiser_tasks, pwiser_lambda=loss.lam, pwiser_m1=loss.m1, pwiser_m2=loss.m2,
                pwiser_space=loss.space, pwiser_pairing=loss.pairing, name=cfg.name)


def _multitask_builder(cls, task_arg: bool = True, **fields: str) -> Callable[..., RankingModel]:
    """A builder of the multi-task model ``cls``; ``fields`` maps its own arguments to its config section's keys."""

    def build_fn(cfg, schema, vocabularies, transform) -> RankingModel:
        args = _multitask_args(cfg, schema, vocabularies, transform)
        if task_arg:
            args["tasks"] = cfg.tasks
        args.update({arg: getattr(cfg, key) for arg, key in fields.items()})
        return cls(**args)

    return build_fn


_BUILDERS: Dict[str, Callable[..., RankingModel]] = {
    "dcn_v2": _build_dcn_v2,
    "shared_bottom": _multitask_builder(SharedBottom, bottom_units="bottom_units"),
    "mmoe": _multitask_builder(MMoE, num_experts="num_experts", expert_units="expert_units"),
    "ple": _multitask_builder(PLE, num_levels="num_levels", num_shared_experts="num_shared_experts",
                              num_task_experts="num_task_experts", expert_units="expert_units"),
    "esmm": _multitask_builder(ESMM, task_arg=False, bottom_units="bottom_units"),
    "single_task": _multitask_builder(SingleTask, task_arg=False, task="task"),
}


def names() -> List[str]:
    """The registered model names."""
    return sorted(_BUILDERS)


def build(cfg, schema: PointwiseSchema, vocabularies, transform) -> RankingModel:
    """Builds the model of the ``model`` section ``cfg`` (named ``cfg.name``; call inside ``strategy.scope()``)."""
    if cfg.name not in _BUILDERS:
        raise ValueError(f"unknown model {cfg.name!r}; known models: {', '.join(names())}")
    return _BUILDERS[cfg.name](cfg, schema, vocabularies, transform)
