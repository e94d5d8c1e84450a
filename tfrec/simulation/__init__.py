"""Simulated data with known ground truth (``tfrec.simulation.criteo``: a Criteo-shaped click log;
``tfrec.simulation.cascade``: recommendation-cascade logs for HCCP pre-ranking data)."""

from tfrec.simulation.criteo import SimulationResult, simulate

__all__ = ["SimulationResult", "simulate"]
