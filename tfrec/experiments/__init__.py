"""The experiment protocols (KDD 2024 losses, PWiseR multi-task, HCCP pre-ranking) as runnable, resumable sweeps
with tables and plots.

``tfrec experiment <protocol> --data DIR --seeds N --out OUT`` (or :func:`run_protocol`) runs a registered
protocol (:func:`names`): the KDD 2024 ones (sparsity, alpha, losses, focal, negative-sampling, contrastive,
findings) on a prepared point-wise dataset, ``hccp`` (the HCCP variants of Tables 1 and 3) on a prepared
hybrid-sample dataset, ``hccp-taobao`` (HCCP's Table 2) on the Taobao lists, and ``pwiser`` on a prepared
multi-task dataset.

Packages: ``core`` (the registry, the sweep, the one cell runner, the store, statistics, tables, plots; it imports
no family's code), and the families' protocols that register with it: ``kdd``, ``hccp``, ``pwiser``.
"""

from tfrec.experiments.core.engine import run_protocol, seeds_of
from tfrec.experiments.core.registry import Metric, Options, Protocol, Setting, get, names, register

__all__ = ["Metric", "Options", "Protocol", "Setting", "get", "names", "register", "run_protocol", "seeds_of"]
