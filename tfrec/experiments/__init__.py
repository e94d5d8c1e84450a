"""The experiment protocols (KDD 2024 losses, HCCP pre-ranking) as runnable, resumable sweeps with tables and plots.

``tfrec experiment <protocol> --data DIR --seeds N --out OUT`` (or :func:`run_protocol`) runs a registered
protocol (``protocols.names()``: sparsity, alpha, losses, focal, negative-sampling, contrastive, findings) on a
prepared dataset, ``hccp`` (the HCCP variants of Tables 1 and 3) on a prepared hybrid-sample dataset, and
``hccp-taobao`` (HCCP's Table 2: ``hccp_taobao``, ``hccp_taobao_report``) on the Taobao lists.
Modules: ``store`` (cells, fingerprints, atomic result files), ``runner`` (one training run), ``stats`` (mean /
std, paired t-test), ``tables`` (CSV, Markdown), ``plots`` (PNG), ``report``, ``findings``, ``protocols`` (the
registry), ``engine`` (the sweep), ``quick`` (the ``--quick`` dataset), ``hccp`` and ``hccp_report`` (the HCCP
protocol and its report).
"""

from tfrec.experiments.engine import run_protocol, seeds_of
from tfrec.experiments.protocols import Metric, Options, Protocol, Setting, get, names, register

__all__ = ["Metric", "Options", "Protocol", "Setting", "get", "names", "register", "run_protocol", "seeds_of"]
