"""The sub-command protocol every package's ``cli.py`` follows, and the one dispatcher."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import ClassVar, Protocol

from pydantic import ValidationError
from pydantic_settings import SettingsError

from osmimport.errors import FondplanError
from osmimport.settings import ImportSettings, SettingsTree, settings_error


class Command(Protocol):
    """A sub-command: ``add_args`` declares its arguments, ``run`` does the work."""

    name: ClassVar[str]
    help: ClassVar[str]

    def add_args(self, parser: argparse.ArgumentParser) -> None:
        """Declare the command's arguments."""

    def run(self, args: argparse.Namespace) -> int:
        """Do the work (``args.settings`` is the settings tree); the return value is the exit
        code."""


def build_parser(
    prog: str, description: str, commands: Sequence[Command]
) -> argparse.ArgumentParser:
    """An argparse parser with one sub-parser per command."""
    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    subs = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in commands:
        sub = subs.add_parser(
            command.name,
            help=command.help,
            description=(type(command).__doc__ or command.help),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.add_args(sub)
        sub.set_defaults(_command=command)
    return parser


def dispatch(
    prog: str,
    description: str,
    commands: Sequence[Command],
    argv: Sequence[str] | None,
    settings: type[SettingsTree] = ImportSettings,
) -> int:
    """Parse ``argv``, read the settings tree once and run the chosen command with it in
    ``args.settings``; user errors print ``error: ...`` and give 1."""
    parser = build_parser(prog, description, commands)
    args = parser.parse_args(argv)
    command: Command = args._command
    try:
        args.settings = settings()
    except (ValidationError, SettingsError) as exc:
        print(f"error: {settings_error(settings, exc)}", file=sys.stderr)
        return 1
    try:
        return command.run(args)
    except FondplanError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
