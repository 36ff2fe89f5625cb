"""Helpers shared by the subcommands: JSON output as the last stdout line, options several commands take."""
from __future__ import annotations

import functools
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
    """--from, --reset, --reset-timing and --dt: what a NIR file does not say (neuromap.ir.nir_io, .presets),
    handed to the command as one keyword ``nir_import`` for ``read_model``."""
    from neuromap.ir.presets import FRAMEWORKS

    @functools.wraps(command)
    def with_nir_import(*args: Any, framework: str | None, reset: str | None, reset_timing: str | None,
                        dt: float | None, **kwargs: Any) -> Any:
        nir_import = {"framework": framework, "reset": reset, "reset_timing": reset_timing, "dt": dt}
        return command(*args, nir_import=nir_import, **kwargs)

    with_nir_import = click.option("--reset-timing", type=click.Choice(["immediate", "next_step"]), default=None,
                                   help="For a NIR file: when its neurons reset (overrides --from; snnTorch: "
                                        "next_step).")(with_nir_import)
    with_nir_import = click.option("--reset", type=click.Choice(["subtract", "zero"]), default=None,
                                   help="For a NIR file: whether its neurons subtract the threshold or reset to "
                                        "zero on a spike (overrides --from).")(with_nir_import)
    with_nir_import = click.option("--dt", type=float, default=None,
                                   help="For a NIR file: the time step that turns its time constants into decays "
                                        "(overrides --from; snnTorch: 1e-4).")(with_nir_import)
    return click.option("--from", "framework", type=click.Choice(FRAMEWORKS), default=None,
                        help="For a NIR file: the framework that wrote it, whose conventions (dt, reset, reset "
                             "timing, input gain, batch dimension) apply; docs/frameworks.md.")(with_nir_import)


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


def checked_devices(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[str, ...] | None:
    """A click callback for a ``--device`` that takes a comma-separated list (``cuda:0,cuda:1``; ``cpu,cpu``
    repeats a device): each item checked as ``checked_device`` checks one."""
    if value is None:
        return None
    return tuple(str(checked_device(ctx, param, item)) for item in value.split(","))
