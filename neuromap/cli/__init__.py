"""The ``neuromap`` command. Each subcommand lives in its own module, named in ``COMMANDS`` below and imported
only when it runs (or its ``--help`` is asked for), so that ``neuromap --help`` answers without loading torch.

Each command is a thin layer over its twin in the Python API (``API_TWINS``, ``neuromap.api``): it parses flags,
calls the function and prints; with ``--json`` its last stdout line is the result's ``to_dict()``. ``--quiet``
silences progress bars and informational text. Warnings and errors are printed as one line each on stderr
(``neuromap.cli.messages``): an error of the family (``neuromap.errors``, hwsim's, mappings') and a usage
error click finds in the command line exit with status 2, any other exception is a bug and exits with
status 1 (traceback with ``--debug`` or NEUROMAP_DEBUG=1).
"""
from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import Any

import click

from neuromap.cli.common import quiet_option
from neuromap.cli.messages import DEBUG_ENV, EXIT_ERROR, EXIT_INTERRUPTED, reported, usage_error_line

# command name -> ("module:attribute", the one-line help `neuromap --help` lists without importing the module).
# A new command is one module plus one line here.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("neuromap.cli.demo:demo", "The main job on embedded data, end to end."),
    "train": ("neuromap.cli.train:train", "Train an SNN with STOP (or BPTT), thresholds and leaks included."),
    "convert": ("neuromap.cli.convert:convert_cmd", "Convert a trained ANN to an SNN (RMP-SNN, soft reset)."),
    "compile": ("neuromap.cli.compile:compile_cmd", "Quantize, partition and place a network for a target."),
    "run": ("neuromap.cli.run:run_cmd", "Run a network or Mapping on torch, hwsim or Lava; report accuracy."),
    "estimate": ("neuromap.cli.estimate:estimate_cmd", "Energy and latency on the chip against a GPU."),
    "report": ("neuromap.cli.report:report_cmd", "One self-contained HTML page: fit, chip map, accuracy, energy."),
    "export-sanafe": ("neuromap.cli.export_sanafe:export_sanafe_cmd",
                      "Write a Loihi 1 Mapping as SANA-FE files (and run SANA-FE on them)."),
    "targets": ("neuromap.cli.targets:targets_cmd", "List the shipped targets, or show one with its sources."),
    "sweep": ("neuromap.cli.sweep:sweep_cmd", "Run a grid of compile/run/estimate points on Dask; table and Pareto."),
}

# command name -> the function of the Python API (``neuromap.<name>``) it is the command line of
API_TWINS: dict[str, str] = {
    "demo": "demo", "train": "train", "convert": "convert_zoo", "compile": "compile", "run": "run",
    "estimate": "estimate", "export-sanafe": "export_sanafe", "targets": "targets",
    "report": "report", "sweep": "sweep",
}


class _LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, attr = COMMANDS[cmd_name][0].split(":")
        command: click.Command = getattr(importlib.import_module(module), attr)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, short) for name, (_, short) in COMMANDS.items()])

    def invoke(self, ctx: click.Context) -> Any:
        with reported(debug=bool(ctx.params.get("debug"))):
            return super().invoke(ctx)

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> Any:
        """click's usage errors (an unknown flag, a value its types refuse) as one ``neuromap: error:`` line
        naming the command's --help, exit status 2, as every other user error."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            status = super().main(args, prog_name, complete_var, False, **extra)
        except click.ClickException as exc:
            click.echo(usage_error_line(exc), err=True)
            sys.exit(EXIT_ERROR)
        except click.Abort:   # click's form of a KeyboardInterrupt outside a command's body
            click.echo("neuromap: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        sys.exit(status if isinstance(status, int) else 0)


@click.group("neuromap", cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="neuromap")
@click.option("--debug", is_flag=True, help=f"Show the traceback of an internal error (or set {DEBUG_ENV}=1).")
@quiet_option
def main(debug: bool) -> None:
    """Take trained spiking neural networks to Loihi-style neuromorphic hardware.

    \b
    Examples:
      neuromap demo
      neuromap compile net.nir --from snntorch --target loihi2 --json
      neuromap estimate net.map.npz --data digits --steps 32
      neuromap targets loihi2

    Every command's --help has its examples; in Python each is a function of the same name (neuromap.compile,
    neuromap.run, ...) whose result's to_dict() is the command's --json line.
    """
