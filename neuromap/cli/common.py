"""Helpers shared by the subcommands: JSON output as the last stdout line."""
from __future__ import annotations

import json
from typing import Any

import click
import numpy as np


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def emit_json(obj: dict[str, Any]) -> None:
    """Print one JSON object on one line (the contract for ``--json``)."""
    click.echo(json.dumps(_plain(obj), sort_keys=True))


def nir_options(command):
    """--dt and --reset-timing: what a NIR file does not say (see neuromap.ir.nir_io)."""
    command = click.option("--reset-timing", type=click.Choice(["immediate", "next_step"]), default=None,
                           help="For a NIR file without neuromap metadata: when its neurons reset "
                                "(snnTorch: next_step).")(command)
    return click.option("--dt", type=float, default=1.0, show_default=True,
                        help="For a NIR file: the time step that turns its time constants into decays "
                             "(snnTorch: 1e-4).")(command)

