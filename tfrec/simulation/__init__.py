"""Simulated data with known ground truth (``tfrec.simulation.criteo``: a Criteo-shaped click log)."""

from tfrec.simulation.criteo import SimulationResult, simulate

__all__ = ["SimulationResult", "simulate"]
