"""Helpers shared by the subcommands: JSON output as the last stdout line, informational text that ``--quiet``
silences, the options several commands take (one name, one default, one help text each) and the checks of
their values (devices, output paths, limits).

Nothing heavy is imported here at import time: every command's ``--help`` is built from this module and
``neuromap.cli.choices`` alone."""
from __future__ import annotations

import functools
import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from neuromap.cli.choices import FRAMEWORKS, SPLITS
from neuromap.errors import NeuromapError, UnsupportedError

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def say(text: str) -> None:
    """Print informational text on stdout, unless ``--quiet`` (``neuromap.progress.set_quiet``) silenced it.
    Errors and warnings go to stderr through ``neuromap.cli.messages`` and are never silenced."""
    from neuromap.progress import is_quiet

    if not is_quiet():
        click.echo(text)


def _plain(value: Any) -> Any:
    import numpy as np

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


def _set_quiet(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    """Quiet for this command line only: the setting before it returns when the command ends (a program, or a
    test, that calls the CLI in-process keeps its own)."""
    if value:
        from neuromap.progress import is_quiet, set_quiet

        before = is_quiet()
        set_quiet(True)
        ctx.find_root().call_on_close(lambda: set_quiet(before))
    return value


def quiet_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """``-q/--quiet``: no progress bars and no informational text; the --json line, warnings and errors stay.
    The flag is handled here (``neuromap.progress.set_quiet``) and not passed to the command."""
    return click.option("-q", "--quiet", is_flag=True, expose_value=False, callback=_set_quiet,
                        help="No progress bars or informational text (the --json line, warnings and errors stay).")(
        command)


def json_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--json``: the command's result (the API result's ``to_dict()``) as one JSON line, last on stdout."""
    return click.option("--json", "as_json", is_flag=True,
                        help="End with the result as one JSON object on one line (the API's to_dict()).")(command)


def seed_option(what: str) -> Decorator:
    """``--seed``, default 0, with what it seeds."""
    return click.option("--seed", type=SEED, default=0, show_default=True, help=f"Seed of {what}.")


# One default for run and estimate: every sample of the split, so that the accuracy both print for one model
# and data set is the same figure (estimate used 200 and run all, so the README showed two accuracies).
limit_option = click.option("--limit", type=click.IntRange(min=1), default=None, metavar="N",
                            help="Classify at most the first N samples of the split [default: all].")


# the data sets run, estimate and export-sanafe classify (neuromap.data.samples)
SAMPLES_HELP = ("digits, mnist5k, FILE.npz (x, y: images, or (N, T, ...) sequences; or events), or a data set's "
                "folder: cifar10:DIR, cifar100:DIR, imagenet:DIR, nmnist:DIR, dvsgesture:DIR, shd:DIR, "
                "cifar10dvs:DIR (never downloaded; docs/data.md).")
# the data sets convert and train learn from (neuromap.data.load)
TRAINING_HELP = ("digits, mnist5k, FILE.npz with x (N, ...) and y (N,), or cifar10:DIR, cifar100:DIR, imagenet:DIR "
                 "(a folder on disk, normalised; docs/data.md).")


def data_option(required: bool = False, help: str = SAMPLES_HELP) -> Decorator:
    return click.option("--data", "data", default=None if required else "digits", required=required,
                        show_default=not required, help=help)


split_option = click.option("--split", type=click.Choice(SPLITS), default=None,
                            help="Samples to use: the test split or all (default: test for digits, mnist5k and the "
                                 "tonic sets, all for a user's file).")


def steps_option(default: int | None, what: str) -> Decorator:
    """``--steps``: time steps; ``what`` says what the default is."""
    return click.option("--steps", type=click.IntRange(min=1), default=default, show_default=default is not None,
                        help=f"Time steps T {what}.")


def encoding_option(choices: tuple[str, ...]) -> Decorator:
    """``--encoding``: one meaning everywhere (neuromap.cli.choices): how an image becomes each step's input."""
    what = {"direct": "the image itself every step", "poisson": "rate-coded spikes",
            "saccade": "ON/OFF events of the image moved along a triangle"}
    return click.option("--encoding", type=click.Choice(choices), default="direct", show_default=True,
                        help="How an image is presented over the T steps: " +
                             "; ".join(f"{c}: {what[c]}" for c in choices) + ".")


def target_option(default: str | None, what: str = "") -> Decorator:
    return click.option("--target", default=default, show_default=default is not None,
                        help="Target: a shipped name (neuromap targets lists them) or a .toml file" + what + ".")


def nir_options(command):
    """--from, --reset, --reset-timing and --dt: what a NIR file does not say (neuromap.ir.nir_io, .presets),
    handed to the command as one keyword ``nir_import`` for ``read_model``."""
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


def checked_devices(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[str, ...] | None:
    """A click callback for a ``--device`` that takes a comma-separated list (``cuda:0,cuda:1``; ``cpu,cpu``
    repeats a device): each item checked as ``checked_device`` checks one."""
    if value is None:
        return None
    return tuple(str(checked_device(ctx, param, item)) for item in value.split(","))
