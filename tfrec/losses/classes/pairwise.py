"""Pairwise losses (RankNet, Combined-Pair, PWiseR) as Keras ``Loss`` classes."""
