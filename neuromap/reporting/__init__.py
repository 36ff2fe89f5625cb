"""Figures for reports: plots written to files (matplotlib's object API, no global pyplot state)."""
from neuromap.reporting.plots import plot_accuracy_vs_steps

__all__ = ["plot_accuracy_vs_steps"]
