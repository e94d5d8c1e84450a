"""Contrastive losses (supervised contrastive, Combined-Contrastive) as Keras ``Loss`` classes."""
