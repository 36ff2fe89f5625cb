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

