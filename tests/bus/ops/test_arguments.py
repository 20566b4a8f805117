"""Checks on command-line arguments, without a command: each refusal is a usage error."""

from __future__ import annotations

import pytest
import typer

from bus.ops.arguments import BadUsage, confirm, positive, writable_file


@pytest.mark.parametrize("value", [0, -1, -0.5])
def test_positive_refuses_zero_and_below(value):
    """A duration or rate of zero or less is refused, naming the value."""
    with pytest.raises(typer.BadParameter, match="is not above 0"):
        positive(value)


@pytest.mark.parametrize("value", [None, 0.001, 30])
def test_positive_takes_none_and_above_zero(value):
    """No value (the default applies) and any number above zero pass as they are."""
    assert positive(value) == value


def test_writable_file_takes_a_new_file_in_an_existing_folder(tmp_path):
    """A file that does not exist yet, in a folder that does, is fine; nothing is created."""
    target = tmp_path / "bench.json"
    assert writable_file(target) == target
    assert not target.exists()


@pytest.mark.parametrize(
    ("where", "why"),
    [("folder", "is a folder"), ("missing/x.json", "does not exist"), ("a-file/x.json", "is not a folder")],
)
def test_writable_file_refuses_what_cannot_be_written(tmp_path, where, why):
    """A folder, a path in a missing folder or below a regular file is refused before any work."""
    (tmp_path / "folder").mkdir()
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(typer.BadParameter, match=why):
        writable_file(tmp_path / where)


def test_confirm_without_a_terminal_needs_yes(monkeypatch):
    """With no terminal to ask on, only --yes says yes; the refusal says to add it."""
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert confirm("Delete everything?", yes=True) is True
    with pytest.raises(BadUsage, match="add --yes") as refused:
        confirm("Delete everything?", yes=False)
    assert refused.value.format_message().startswith("Delete everything? needs an answer")
