"""Simulated data with known ground truth (``tfrec.simulation.criteo``: a Criteo-shaped click log;
``tfrec.simulation.funnel``: a click -> conversion funnel with noisy clicks, in the AliExpress layout;
``tfrec.simulation.cascade``: recommendation-cascade logs for HCCP pre-ranking data)."""

from tfrec.simulation.criteo import SimulationResult, simulate
from tfrec.simulation.funnel import FunnelResult, simulate_funnel

__all__ = ["FunnelResult", "SimulationResult", "simulate", "simulate_funnel"]
