"""The ``neuromap`` command. Each subcommand lives in its own module, named in ``COMMANDS`` below and imported
only when it runs (or its ``--help`` is asked for), so that ``neuromap --help`` answers without loading torch.

Every command that computes figures takes ``--json``: its last stdout line is then one JSON object.
Warnings and errors are printed as one line each on stderr (``neuromap.cli.messages``): an error of the
family (``neuromap.errors``, hwsim's, mappings') exits with status 2, any other exception is a bug and
exits with status 1 (traceback with ``--debug`` or NEUROMAP_DEBUG=1).
"""
from __future__ import annotations

import importlib

import click

from neuromap.cli.messages import DEBUG_ENV, reported

# command name -> ("module:attribute", the one-line help `neuromap --help` lists without importing the module).
# A new command is one module plus one line here.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("neuromap.cli.demo:demo", "The main job on embedded data, end to end."),
    "train": ("neuromap.cli.train:train", "Train an SNN with STOP (or BPTT), thresholds and leaks included."),
    "convert": ("neuromap.cli.convert:convert_cmd", "Convert a trained ANN to an SNN (RMP-SNN, soft reset)."),
    "compile": ("neuromap.cli.compile:compile_cmd", "Quantize, partition and place a network for a target."),
    "run": ("neuromap.cli.run:run_cmd", "Run a network or Mapping on torch, hwsim or Lava; report accuracy."),
    "estimate": ("neuromap.cli.estimate:estimate_cmd", "Energy and latency on the chip against a GPU."),
    "export-sanafe": ("neuromap.cli.export_sanafe:export_sanafe_cmd",
                      "Write a Loihi 1 Mapping as SANA-FE files (and run SANA-FE on them)."),
    "sweep": ("neuromap.cli.sweep:sweep_cmd", "Run a grid of compile/run/estimate points on Dask; table and Pareto."),
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

    def invoke(self, ctx: click.Context):
        with reported(debug=bool(ctx.params.get("debug"))):
            return super().invoke(ctx)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="neuromap")
@click.option("--debug", is_flag=True, help=f"Show the traceback of an internal error (or set {DEBUG_ENV}=1).")
def main(debug: bool) -> None:
    """Take trained spiking neural networks to Loihi-style neuromorphic hardware.

    \b
    Examples:
      neuromap demo
      neuromap compile net.nir --from snntorch --target loihi2 --json
      neuromap estimate net.map.npz --data digits --steps 32
    """
