"""Checks on command-line arguments shared by `mesh` and `mesh bench`, for what typer's
`min=`/`max=` cannot state.

Each fails as a usage error (`error: Invalid value for '--wait': …`, exit 2) before the command
does anything. The rule every numeric option follows: `min=` or a callback here; no option takes
a negative number (tests/bus/ops/test_cli_garbage.py holds every command to it).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

MAX_PORT = 65535


def positive(value: float | None) -> float | None:
    """Typer callback: a number of seconds (or a rate) above zero, or None."""
    if value is not None and value <= 0:
        raise typer.BadParameter(f"{value:g} is not above 0")
    return value


def writable_file(value: Path | None) -> Path | None:
    """Typer callback: a file we can create or overwrite, checked before a long run writes it."""
    if value is None:
        return value
    folder = value.parent
    if value.is_dir():
        raise typer.BadParameter(f"{value} is a folder; give a file name")
    if not folder.is_dir():
        raise typer.BadParameter(f"{folder} is not a folder" if folder.exists() else f"folder {folder} does not exist")
    if not os.access(value if value.exists() else folder, os.W_OK):
        raise typer.BadParameter(f"cannot write {value}: permission denied")
    return value


class BadUsage(typer.BadParameter):
    """A usage error in our own words (exit 2): arguments that do not go together, or a question
    nobody is there to answer; `BadParameter` is for one argument's value."""

    def format_message(self) -> str:
        return self.message


def confirm(question: str, *, yes: bool) -> bool:
    """Ask on a terminal; without one, only `--yes` may say yes (a script never hangs on a prompt)."""
    if yes:
        return True
    if not sys.stdin.isatty():
        raise BadUsage(f"{question} needs an answer, and standard input is not a terminal: add --yes")
    return typer.confirm(question)
