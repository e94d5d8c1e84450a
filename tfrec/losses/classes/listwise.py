"""List-wise losses (ListNet, Combined-List, ListCE, RCR, JRC) as Keras ``Loss`` classes."""
