"""The PWiseR multi-task protocol (Durmus et al. 2024): ``protocol`` (``pwiser``, registered with
:mod:`tfrec.experiments.core.registry`), ``settings`` (its parts, settings and metrics), ``data`` (the noise
sweep's simulated datasets), ``cell`` (a cell) and ``report`` (its tables and plots).
"""
