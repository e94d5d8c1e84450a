"""Keras layers of tfrec: feature preprocessing + embeddings, MLP, DCN V2 cross network."""

from tfrec.layers.cross import Cross, CrossNetwork
from tfrec.layers.embedding import FeatureEmbedding
from tfrec.layers.experts import CGC, Experts, Gate
from tfrec.layers.mlp import MLP

__all__ = ["CGC", "Cross", "CrossNetwork", "Experts", "FeatureEmbedding", "Gate", "MLP"]
