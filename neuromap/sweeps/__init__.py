"""Design-space sweeps: many compile -> run (hwsim) -> estimate points on Dask distributed (docs/sweep.md).

    from neuromap.sweeps import sweep
    result = sweep("sweep.toml", workers=2)     # table.csv, points.jsonl, pareto.png beside the spec
    result.to_dict()["failed"]
"""
from neuromap.sweeps.engine import connected, default_workers, sweep
from neuromap.sweeps.pareto import pareto_figure, pareto_front
from neuromap.sweeps.results import TABLE_COLUMNS, SweepResult
from neuromap.sweeps.spec import POINT_KEYS, SweepSpec, load_spec

__all__ = ["POINT_KEYS", "TABLE_COLUMNS", "SweepResult", "SweepSpec", "connected", "default_workers", "load_spec",
           "pareto_figure", "pareto_front", "sweep"]
