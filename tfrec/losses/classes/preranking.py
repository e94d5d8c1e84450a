"""Pre-ranking losses of HCCP (ListMLE consistency, InfoNCE, Margin InfoNCE) as Keras ``Loss`` classes."""
