"""The KDD 2024 experiment protocols as runnable, resumable sweeps with tables and plots.

``tfrec experiment <protocol> --data DIR --seeds N --out OUT`` (or :func:`run_protocol`) runs a registered
protocol (``protocols.names()``: sparsity, alpha, losses, focal, negative-sampling, contrastive, findings) on a
prepared dataset. Modules: ``store`` (cells, fingerprints, atomic result files), ``runner`` (one training run),
``stats`` (mean / std, paired t-test), ``tables`` (CSV, Markdown), ``plots`` (PNG), ``report``, ``findings``,
``protocols`` (the registry), ``engine`` (the sweep), ``quick`` (the ``--quick`` dataset).
"""

from tfrec.experiments.engine import run_protocol, seeds_of
from tfrec.experiments.protocols import Metric, Options, Protocol, Setting, get, names, register

__all__ = ["Metric", "Options", "Protocol", "Setting", "get", "names", "register", "run_protocol", "seeds_of"]
