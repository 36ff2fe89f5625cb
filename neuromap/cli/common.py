"""Helpers shared by the subcommands: JSON output as the last stdout line, options several commands take and
the checks of their values (devices, output paths, the memory a run of N samples x T steps needs)."""
from __future__ import annotations

import functools
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import click
import numpy as np

from neuromap.errors import NeuromapError, UnsupportedError
from neuromap.limits import check_memory


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


def _not_finite(value: Any, where: str) -> tuple[str, float] | None:
    """The first figure in ``value`` that is NaN or infinite, with its key path, or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return where, value
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = _not_finite(item, f"{where}.{key}" if where else str(key))
        if found is not None:
            return found
    return None


def emit_json(obj: dict[str, Any]) -> None:
    """Print one JSON object on one line (the contract for ``--json``). JSON has no NaN or Infinity: a figure
    that is not finite is an error naming it, never a line other programs cannot parse."""
    plain = _plain(obj)
    found = _not_finite(plain, "")
    if found is not None:
        raise NeuromapError(f"--json: figure {found[0]!r} is {found[1]}, which JSON cannot hold", flag="--json",
                            field=found[0], value=found[1])
    click.echo(json.dumps(plain, sort_keys=True, allow_nan=False))


# numpy and torch take seeds of up to 64 bits; a bigger one was an overflow deep inside the run
SEED = click.IntRange(0, 2**63 - 1)


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


def checked_output(ctx: click.Context, param: click.Parameter, value: str | Path | None) -> str | Path | None:
    """A click callback for an output file flag: refuse, before any work, a path that cannot be written. The
    folders it names are created when the file is written; the first of them that exists must be a folder
    in which a file can be created (not a regular file, a read-only place or /proc)."""
    if value is None:
        return value
    flag = param.opts[-1] if param.opts else "--out"
    path = Path(value)
    folder = path.absolute().parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise UnsupportedError(f"{flag} {value}: {folder} is a file, not a folder", flag=flag, value=str(value),
                               path=str(folder))
    try:
        handle, probe = tempfile.mkstemp(dir=folder, prefix=".neuromap-probe-")
    except OSError as exc:
        raise UnsupportedError(f"{flag} {value}: cannot write in {folder} ({exc.strerror})", flag=flag,
                               value=str(value), path=str(folder)) from None
    os.close(handle)
    os.unlink(probe)
    return value


def checked_output_folder(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """``checked_output`` for a flag naming the folder files are written into."""
    if value is not None:
        checked_output(ctx, param, Path(value) / "summary.json")
    return value


def check_run_memory(samples: int, steps: int, values_per_step: int, bytes_per_value: int, what: str) -> None:
    """Refuse, naming --steps, a run whose traces (samples x steps x values, at ``bytes_per_value`` each: the
    least the engine keeps) could not be held in memory."""
    needed = samples * steps * values_per_step * bytes_per_value
    check_memory(needed, f"--steps {steps:,}: {what} (samples x steps x values per step x bytes per value: "
                 f"{samples:,} x {steps:,} x {values_per_step:,} x {bytes_per_value})", UnsupportedError,
                 flag="--steps", value=steps)


def checked_devices(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[str, ...] | None:
    """A click callback for a ``--device`` that takes a comma-separated list (``cuda:0,cuda:1``; ``cpu,cpu``
    repeats a device): each item checked as ``checked_device`` checks one."""
    if value is None:
        return None
    return tuple(str(checked_device(ctx, param, item)) for item in value.split(","))
