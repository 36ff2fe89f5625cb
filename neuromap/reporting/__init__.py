"""Reports: the HTML page of ``neuromap report`` (``report``) and plots written to files (matplotlib's object
API, no global pyplot state)."""
from neuromap.reporting.plots import plot_accuracy_vs_steps
from neuromap.reporting.report import Report, report

__all__ = ["Report", "plot_accuracy_vs_steps", "report"]
