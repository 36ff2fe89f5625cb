"""The ``neuromap`` command. Each subcommand lives in its own module and is registered below.

Every command that computes figures takes ``--json``: its last stdout line is then one JSON object.
A NeuromapError (or an error of hwsim's or mappings' own family) becomes one line on stderr and exit
status 2, never a traceback.
"""
from __future__ import annotations

import sys

import click

from hwsim.errors import HwsimError
from mappings import TargetError
from neuromap.errors import NeuromapError


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (NeuromapError, HwsimError, TargetError) as exc:
            click.echo(f"neuromap: error: {exc}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("neuromap: interrupted", err=True)
            sys.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="neuromap")
def main() -> None:
    """Take trained spiking neural networks to Loihi-style neuromorphic hardware."""


def _register() -> None:
    """Subcommands are added here, one module each."""
    from neuromap.cli.compile import compile_cmd
    from neuromap.cli.convert import convert_cmd
    from neuromap.cli.demo import demo
    from neuromap.cli.estimate import estimate_cmd
    from neuromap.cli.run import run_cmd
    from neuromap.cli.train import train

    for command in (demo, train, convert_cmd, compile_cmd, run_cmd, estimate_cmd):
        main.add_command(command)


_register()
