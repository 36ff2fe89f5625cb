"""How the CLI tells the user about warnings and errors: one line each on stderr, in one format.

    neuromap: warning: <message>
    neuromap: error: <message>                                        exit status 2 (our error family, and
                                                                      click's usage errors)
    neuromap: internal error: <type>: <message> — please report it ...  exit status 1 (a bug)
    neuromap: interrupted | terminated                                  exit status 130 | 143 (SIGINT | SIGTERM)

SIGTERM is raised as :class:`Terminated` where the command is, as SIGINT raises KeyboardInterrupt, so that
clean-ups run (a Lava run's processes and shared memory released, a half-written output removed).

A warning of another library (torch, Lava, ...) is shown in the same format with its category and origin
appended; Python's default filters still apply to those (deprecation warnings stay hidden), while every
NeuromapWarning is shown each time it is raised.
"""
from __future__ import annotations

import os
import signal
import sys
import traceback
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

import click

from mappings.errors import NeuromapError, NeuromapWarning
from neuromap.signals import Terminated, sigterm_raises

EXIT_ERROR = 2      # the user's input, network or target is at fault (also click's usage errors)
EXIT_INTERNAL = 1   # a bug in neuromap
EXIT_INTERRUPTED = 128 + signal.SIGINT   # 130, as a shell reports a process that SIGINT ended
EXIT_TERMINATED = 128 + signal.SIGTERM   # 143
DEBUG_ENV = "NEUROMAP_DEBUG"
REPORT_TO = "the neuromap issue tracker (see README.md)"


def one_line(text: str) -> str:
    """``text`` on one line: a multi-line library message must not break the one-line contract."""
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def _origin(filename: str, lineno: int) -> str:
    """Where a library warning was raised, from the package down (site-packages/ cut off)."""
    parts = Path(filename).parts
    if "site-packages" in parts:
        parts = parts[parts.index("site-packages") + 1:]
    return f"{'/'.join(parts[-3:])}:{lineno}"


def warning_line(message: Warning | str, category: type[Warning], filename: str, lineno: int) -> str:
    """The one line a warning is shown as."""
    text = one_line(str(message))
    if issubclass(category, NeuromapWarning):
        return f"neuromap: warning: {text}"
    return f"neuromap: warning: {text} ({category.__name__} from {_origin(filename, lineno)})"


def show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                 file: TextIO | None = None, line: str | None = None) -> None:
    """A ``warnings.showwarning`` replacement that prints ``warning_line`` on stderr."""
    click.echo(warning_line(message, category, filename, lineno), err=True)


def show_recorded(caught: list[warnings.WarningMessage]) -> None:
    """Print warnings a command recorded itself (to count them) in the one format."""
    for w in caught:
        show_warning(w.message, w.category, w.filename, w.lineno)


def error_line(exc: NeuromapError) -> str:
    return f"neuromap: error: {one_line(str(exc))}"


def usage_error_line(exc: click.ClickException) -> str:
    """A usage error click found (unknown flag, refused value, missing argument), with the --help to read."""
    ctx = getattr(exc, "ctx", None)
    hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    return f"neuromap: error: {one_line(exc.format_message())}{hint}"


def internal_error_line(exc: BaseException) -> str:
    return (f"neuromap: internal error: {type(exc).__name__}: {one_line(str(exc))} — please report it at "
            f"{REPORT_TO} with the command line (neuromap --debug or {DEBUG_ENV}=1 shows the traceback)")


@contextmanager
def reported(debug: bool) -> Iterator[None]:
    """Run a command body: its warnings printed as they come, its errors turned into one line and an exit
    status. ``debug`` (or the environment variable ``NEUROMAP_DEBUG``) adds the traceback of an internal error."""
    with warnings.catch_warnings(), sigterm_raises():
        warnings.simplefilter("always", NeuromapWarning)
        warnings.showwarning = show_warning
        try:
            yield
        except NeuromapError as exc:
            click.echo(error_line(exc), err=True)
            sys.exit(EXIT_ERROR)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise  # click's usage errors and exits: the group's main prints them (neuromap.cli._LazyGroup.main)
        except KeyboardInterrupt:
            click.echo("neuromap: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except Terminated:
            click.echo("neuromap: terminated", err=True)
            sys.exit(EXIT_TERMINATED)
        except Exception as exc:  # the last resort: anything else is a bug
            if debug or os.environ.get(DEBUG_ENV, "0") not in ("", "0"):
                traceback.print_exc()
            click.echo(internal_error_line(exc), err=True)
            sys.exit(EXIT_INTERNAL)
