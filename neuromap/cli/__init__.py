"""The ``neuromap`` command. Each subcommand lives in its own module and is registered below.

Every command that computes figures takes ``--json``: its last stdout line is then one JSON object.
Warnings and errors are printed as one line each on stderr (``neuromap.cli.messages``): an error of the
family (``neuromap.errors``, hwsim's, mappings') exits with status 2, any other exception is a bug and
exits with status 1 (traceback with ``--debug`` or NEUROMAP_DEBUG=1).
"""
from __future__ import annotations

import click

from neuromap.cli.messages import DEBUG_ENV, reported


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        with reported(debug=bool(ctx.params.get("debug"))):
            return super().invoke(ctx)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="neuromap")
@click.option("--debug", is_flag=True, help=f"Show the traceback of an internal error (or set {DEBUG_ENV}=1).")
def main(debug: bool) -> None:
    """Take trained spiking neural networks to Loihi-style neuromorphic hardware."""


def _register() -> None:
    """Subcommands are added here, one module each."""
    from neuromap.cli.compile import compile_cmd
    from neuromap.cli.convert import convert_cmd
    from neuromap.cli.demo import demo
    from neuromap.cli.estimate import estimate_cmd
    from neuromap.cli.export_sanafe import export_sanafe_cmd
    from neuromap.cli.run import run_cmd
    from neuromap.cli.train import train

    for command in (demo, train, convert_cmd, compile_cmd, run_cmd, estimate_cmd, export_sanafe_cmd):
        main.add_command(command)


_register()
