"""The `aecompress` command line: a thin Typer layer over the library.

One module per group of commands; `common` holds what they share (consoles, options, the
error guard and exit codes: 0 success, 1 failure, 2 usage error, 130 interrupted).
"""

from __future__ import annotations

from typing import Annotated

import typer

from .. import __version__
from .bench_command import bench
from .codec_commands import decode, encode, info, models
from .common import PlainCommand, out
from .lineage_command import lineage_app
from .train_command import train

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Learned image compression: encode images to .aec files and back.",
    context_settings={"help_option_names": ["-h", "--help"]},
    # Plain help, as classic codec tools print it: defaults shown as "[default: 75]" (not read
    # as Rich markup) and docstrings re-flowed to the terminal's width.
    rich_markup_mode=None,
)
for command in (encode, decode, info, models, bench, train):
    app.command(cls=PlainCommand)(command)
app.add_typer(lineage_app, name="lineage")


def _version(value: bool) -> None:
    if value:
        out.print(f"aecompress {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("-V", "--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Learned image compression: encode images to .aec files and back."""


def main() -> None:
    app()
