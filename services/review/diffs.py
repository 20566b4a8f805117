"""Unified diffs, read into the lines a release adds and removes.

`Change.diff` comes from many producers: full `git diff` output, a bare hunk, or just a few
`+` lines with no `@@` header at all. Without a header, line numbers count from 1. Also here:
how rules read one line (is it a comment, what is code and what is string prose).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

# `#define`, `#include`, `#!` and friends are code, not comments; `--flag` is not a SQL comment.
_COMMENT = re.compile(r"^\s*(#(?!define\b|include\b|if|pragma\b|undef\b|!)|//|/\*|\*(\s|/|$)|--(\s|$)|<!--|;)")
_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`(?:\\.|[^`\\])*`')
_INTERPOLATION = re.compile(r"\$?\{[^{}]*\}|%\(\w+\)")
_KEY_LIKE = re.compile(r"[A-Za-z_][\w.-]*")
_HUNK = re.compile(r"^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@")
# Lines git prints between `diff --git` and the first hunk; none of them is content.
_FILE_HEADERS = (
    "--- ",
    "+++ ",
    "index ",
    "new file mode",
    "deleted file mode",
    "old mode",
    "new mode",
    "similarity index",
    "dissimilarity index",
    "rename from",
    "rename to",
    "copy from",
    "copy to",
    "Binary files",
)


@dataclass(frozen=True)
class DiffLine:
    """One added or removed line, without its `+`/`-` marker.

    `line` is always a new-file line number: for an added line, where it now is; for a
    removed line, where it used to be (the new-file line that now follows the removal).
    `old_line` is the removed line's number in the old file (None for added lines).
    """

    kind: Literal["added", "removed"]
    text: str
    line: int
    old_line: int | None = None


@dataclass(frozen=True)
class ParsedDiff:
    """The added and removed lines of one file's diff, in diff order."""

    added: list[DiffLine] = field(default_factory=list)
    removed: list[DiffLine] = field(default_factory=list)

    @property
    def lines(self) -> list[DiffLine]:
        """Added and removed lines together, ordered by new-file line."""
        return sorted(self.added + self.removed, key=lambda item: (item.line, item.kind != "removed"))


def parse_diff(diff: str) -> ParsedDiff:
    """Read a unified diff into added and removed lines with new-file line numbers."""
    parsed = ParsedDiff()
    old_no = new_no = 1
    in_header = True  # true until the first hunk or content line of each file
    for raw in diff.splitlines():
        if raw.startswith("diff --git") or raw.startswith("diff -"):
            in_header = True
            continue
        hunk = _HUNK.match(raw)
        if hunk:
            old_no, new_no = int(hunk.group(1)), int(hunk.group(2))
            in_header = False
            continue
        if in_header and raw.startswith(_FILE_HEADERS):
            continue
        in_header = False
        if raw.startswith("\\"):  # "\ No newline at end of file"
            continue
        if raw.startswith("+"):
            parsed.added.append(DiffLine("added", raw[1:], new_no))
            new_no += 1
        elif raw.startswith("-"):
            parsed.removed.append(DiffLine("removed", raw[1:], max(new_no, 1), old_no))
            old_no += 1
        else:
            # Context (" x"), or an unmarked line from a sloppy producer: present in both files.
            old_no += 1
            new_no += 1
    return parsed


def is_comment(text: str) -> bool:
    """Whether a line (without its +/- marker) is a comment in the usual languages."""
    return bool(_COMMENT.match(text))


def blank_strings(text: str) -> str:
    """Drop the prose inside string literals, keeping interpolations and key-like strings.

    `log.info("sending email to %s", user_id)` mentions email only in prose; `{user.email}`,
    `%(email)s` or a `"email"` key put the value itself into the output.
    """

    def keep(match: re.Match[str]) -> str:
        literal = match.group(0)
        body = literal[1:-1]
        if _KEY_LIKE.fullmatch(body):
            return literal
        kept = " ".join(found.group(0) for found in _INTERPOLATION.finditer(body))
        return literal[0] + kept + literal[-1]

    return _STRING.sub(keep, text)
