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


# Characters that end a line for some readers but not for `str.split("\n")`: a secret placed
# after one hides from tools that split on them and from terminals that honour them.
_ODD_BREAKS = re.compile("[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


@dataclass(frozen=True)
class DiffLine:
    """One added, removed or context line, without its `+`/`-`/` ` marker.

    `line` is always a new-file line number: for an added or context line, where it now is; for a
    removed line, where it used to be (the new-file line that now follows the removal).
    `old_line` is the removed line's number in the old file (None for added lines).
    """

    kind: Literal["added", "removed", "context"]
    text: str
    line: int
    old_line: int | None = None


@dataclass(frozen=True)
class ParsedDiff:
    """The lines of one file's diff, in diff order.

    `unmarked`: in a diff with no `@@` hunk header, the lines that carry no `+` (context-indented,
    `-`-led or bare), read whole: to a careful producer they are context or removals, to a
    careless one (or a hostile one) the new file itself. Rules read them as added too, so a
    file pasted without markers is never unread.
    """

    added: list[DiffLine] = field(default_factory=list)
    removed: list[DiffLine] = field(default_factory=list)
    context: list[DiffLine] = field(default_factory=list)
    unmarked: list[DiffLine] = field(default_factory=list)

    @property
    def lines(self) -> list[DiffLine]:
        """Added and removed lines together, ordered by new-file line."""
        return sorted(self.added + self.removed, key=lambda item: (item.line, item.kind != "removed"))

    @property
    def new_file(self) -> list[DiffLine]:
        """The lines of the new file this diff shows (added and context), by line number."""
        return sorted(self.added + self.context, key=lambda item: item.line)


def _physical(text: str) -> list[str]:
    """`text` cut at the odd line breaks a newline split leaves inside it (CR, form feed, U+2028 …)."""
    return _ODD_BREAKS.split(text) if _ODD_BREAKS.search(text) else [text]


def text_lines(text: str) -> list[str]:
    """Prose (a description, a title) cut into lines at every kind of line break."""
    return [part for line in text.split("\n") for part in _physical(line)]


def parse_diff(diff: str) -> ParsedDiff:
    """Read a unified diff into added, removed and context lines with new-file line numbers.

    Only `\n` ends a diff line (a trailing `\r` is dropped): text after any other line break
    (`\r`, form feed, U+2028 …) belongs to the line it sits in, with that line's marker, and is
    read as a line of its own. Inside a hunk, a line with no marker at all is read as added
    (fail closed). Without any hunk header, see `ParsedDiff.unmarked`.
    """
    parsed = ParsedDiff()
    old_no = new_no = 1
    in_header = True  # true until the first hunk or content line of each file
    in_hunk = False
    lines = diff.split("\n")
    if lines[-1] == "":
        lines.pop()  # the newline that ends the last line starts no line of its own
    for raw in lines:
        raw = raw.removesuffix("\r")
        if raw.startswith("diff --git") or raw.startswith("diff -"):
            in_header, in_hunk = True, False
            continue
        hunk = _HUNK.match(raw)
        if hunk:
            old_no, new_no = int(hunk.group(1)), int(hunk.group(2))
            in_header, in_hunk = False, True
            continue
        if in_header and raw.startswith(_FILE_HEADERS):
            continue
        in_header = False
        if raw.startswith("\\"):  # "\ No newline at end of file"
            continue
        marker, body = raw[:1], raw[1:]
        if marker == "+":
            parsed.added.extend(DiffLine("added", part, new_no) for part in _physical(body))
            new_no += 1
            continue
        if not in_hunk and raw:
            parsed.unmarked.extend(DiffLine("added", part, new_no) for part in _physical(raw))
        if marker == "-":
            parsed.removed.extend(DiffLine("removed", part, max(new_no, 1), old_no) for part in _physical(body))
            old_no += 1
        elif marker == " " or not raw:
            parsed.context.extend(DiffLine("context", part, new_no) for part in _physical(body))
            old_no += 1
            new_no += 1
        else:
            # No marker: inside a hunk a malformed line, outside one new content. Either way the
            # new file has it (fail closed), and it is counted in both files as context would be.
            if in_hunk:
                parsed.added.extend(DiffLine("added", part, new_no) for part in _physical(raw))
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
