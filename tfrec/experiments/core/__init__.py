"""The experiment core, which no model family's code is imported by: the protocol registry (``registry``), the
sweep (``engine``), the one cell runner (``cell``), the store of cells and runs (``store``), made datasets
(``datasets``), statistics over seeds (``stats``), the table (``tables``), its plots (``plots``) and the default
report (``report``). The families' protocols (``tfrec.experiments.kdd``, ``.hccp``, ``.pwiser``) register with
it.
"""
