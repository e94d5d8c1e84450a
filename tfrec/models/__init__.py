"""tfrec's models, built by name from a :class:`tfrec.config.ModelConfig` and a prepared dataset."""

from __future__ import annotations

import os
from typing import Callable, Dict, List

from tfrec.config import ModelConfig
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


def _build_dcn_v2(cfg: ModelConfig, schema: PointwiseSchema, vocabularies, transform) -> RankingModel:
    return DCNv2(dense=schema.dense, categorical=schema.categorical, vocabularies=vocabularies,
                 transform=transform, embedding_dim=cfg.embedding_dim, embedding_l2=cfg.embedding_l2,
                 structure=cfg.structure, num_cross_layers=cfg.num_cross_layers,
                 cross_low_rank=cfg.cross_low_rank, dnn_hidden_units=cfg.dnn_hidden_units, dropout=cfg.dropout,
                 net_l2=cfg.net_l2, batch_norm=cfg.batch_norm, head=cfg.head, name="dcn_v2")


_BUILDERS: Dict[str, Callable[..., RankingModel]] = {"dcn_v2": _build_dcn_v2}


def names() -> List[str]:
    """The registered model names."""
    return sorted(_BUILDERS)


def build(cfg: ModelConfig, schema: PointwiseSchema, vocabularies, transform) -> RankingModel:
    """Builds the model named ``cfg.name`` (call inside ``strategy.scope()``)."""
    if cfg.name not in _BUILDERS:
        raise ValueError(f"unknown model {cfg.name!r}; known models: {', '.join(names())}")
    return _BUILDERS[cfg.name](cfg, schema, vocabularies, transform)
