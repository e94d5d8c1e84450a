"""The PWiseR experiment (Durmus et al., arXiv 2406.02163; papers 002 / 003) as a protocol: ``tfrec experiment
pwiser``.

Modules: :mod:`~tfrec.experiments.pwiser.settings` (the parts, their settings and metrics),
:mod:`~tfrec.experiments.pwiser.data` (the noise sweep's datasets), :mod:`~tfrec.experiments.pwiser.cell` (a cell),
:mod:`~tfrec.experiments.pwiser.report`; this one registers the protocol.

Three parts, one protocol (one table and its plots per part, :mod:`tfrec.experiments.pwiser.report`):

* ``grid``: {SharedBottom, MMoE, PLE, ESMM, single-task} x {BCE, BCE + PWiseR} on the experiment's ``--data``
  (a prepared multi-task dataset, e.g. AliExpress); setting ``<arch>_bce`` / ``<arch>_pwiser``.
* ``noise``: the noise-share sweep: the funnel simulator (``tfrec.simulation.funnel``) at each noisy-click share,
  prepared with the multi-task Beam pipeline, then BCE vs BCE + PWiseR on MMoE; ``noise<share>_bce`` /
  ``noise<share>_pwiser``. The shares are :data:`NOISE_SHARES` (``--values`` replaces them).
* ``margins``: a lambda x margin grid of BCE + PWiseR on MMoE on ``--data``; ``lambda<l>_m<m1>`` with
  ``m2 = 2 m1`` (the defaults' ratio 0.1 / 0.2), against ``margins_bce`` (lambda = 0, the grid's MMoE BCE run).

Every BCE + PWiseR setting is compared with the BCE setting of the same architecture (and data), paired over
seeds. Metrics (``tfrec.metrics.multitask``, on test): CTR AUC over exposures, CVR AUC over the clicked samples,
CTCVR AUC over exposures, and the logloss of each task in its space.

Readings of the paper (its summary gives neither the tasks nor the grids):

* PWiseR is added to every task the model trains with BCE: CTR and CVR for SharedBottom, MMoE and PLE; CTR and
  CTCVR for ESMM (its CVR tower is trained only through CTCVR); for single-task learning, the task's own model.
* Single-task learning is two models, a CTR model and a CVR model (each with PWiseR on its own logit in the
  PWiseR setting); a cell trains both and scores CTCVR as ``pCTR * pCVR``.
* PWiseR's defaults are the library's: lambda 0.1, m1 0.1, m2 0.2, hinge on probabilities.
* Every cell reads its data with ``data.beta_pos = 1.0`` (:func:`method_overrides`): every sample weighs 1 in the
  CTR loss and the metrics, whatever ``beta_pos`` the dataset was prepared with. PWiseR's paper trains plain BCE;
  KDD 2024's down-weighting of positives (Eq. 15) is not part of it and is not carried into its CTR loss.
"""

from __future__ import annotations

from tfrec.experiments.core.registry import Protocol, packaged_config, register
import tfrec.experiments.pwiser.data as data
import tfrec.experiments.pwiser.settings as settings
from tfrec.families.registry import get as family

QUICK_CONFIG = packaged_config("experiment_pwiser_quick.yaml")


def _run_cell(*args, **kwargs):
    from tfrec.experiments.pwiser.cell import run_cell  # TensorFlow, imported when a cell runs

    return run_cell(*args, **kwargs)


def _report(*args, **kwargs):
    from tfrec.experiments.pwiser.report import build_pwiser_report

    return build_pwiser_report(*args, **kwargs)


PROTOCOL = register(Protocol(
    "pwiser", "PWiseR (Durmus et al. 2024): BCE vs BCE + PWiseR on multi-task models", settings.settings,
    run_cell=_run_cell, metrics=settings.METRICS, report=_report, family="multitask",
    check_data=family("multitask").check_dataset, quick_config=QUICK_CONFIG, quick_data=data.quick_data,
    datasets=data.datasets))
