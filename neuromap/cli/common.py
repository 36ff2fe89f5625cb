"""Helpers shared by the subcommands: JSON output as the last stdout line, options several commands take."""
from __future__ import annotations

import json
from typing import Any

import click
import numpy as np

from neuromap.errors import UnsupportedError


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



def available_devices() -> tuple[str, ...]:
    """The torch devices this machine can run on: the CPU, and each visible CUDA GPU (and Apple's MPS)."""
    import torch

    devices = ["cpu"]
    if torch.cuda.is_available():
        devices += ["cuda", *(f"cuda:{i}" for i in range(torch.cuda.device_count()))]
    if torch.backends.mps.is_available():
        devices.append("mps")
    return tuple(devices)


def checked_device(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A click callback for ``--device``: one of ``available_devices()``, or one error line that lists them."""
    devices = available_devices()
    if value is None or value in devices:
        return value
    flag = param.opts[0] if param.opts else "--device"
    raise UnsupportedError(f"{flag} {value!r}: no such device on this machine (available: {', '.join(devices)})",
                           flag=flag, value=value, allowed=devices)
