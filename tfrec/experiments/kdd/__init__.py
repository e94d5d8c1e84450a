"""The KDD 2024 protocols (Lin et al., "Understanding the Ranking Loss for Recommendation with Sparse User
Feedback"): ``protocols`` (sparsity, alpha, losses, focal, negative-sampling, contrastive, findings, registered
with :mod:`tfrec.experiments.core.registry`), ``metrics`` (their tables' metrics), ``runner`` (a cell: train,
evaluate, summarise), ``landscape`` (Fig. 1b), ``plots`` (the paper's figures), ``findings`` (Findings 1-4) and
``quick`` (the ``--quick`` dataset).
"""
