"""What a rule reads: statements, not physical lines.

A statement is one line of a diff, or several consecutive lines of the same kind joined while a
bracket stays open, a string runs on (triple quotes, backticks), a line ends with an operator
(`+`, `%`, `=`, `\\`, `||` …) or the next one starts with one (`+`, `.`, `%`, `?` …). So a query
built on two lines, or a call whose keyword arguments sit below it, is read whole:
`yaml.load(f,` / `Loader=SafeLoader)` is safe, `"SELECT … '%s'"` / `% email` is not. Braces do
not join lines: they open function bodies, and a body is not one statement.

Each statement has two views. `text` is what was written: secrets count in comments too. `code`
drops comments — whole comment lines, and trailing ones in the file's own comment syntax — so
`argon2.hash(pw)  # replaces md5` is read as `argon2.hash(pw)`.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from services.review.decoding import variants
from services.review.diffs import DiffLine, is_comment

MAX_LINES = 12  # a statement longer than this is cut: rules read it in pieces
MAX_CHARS = 4096  # … and so is one past this size (minified code is one statement per line)

# Trailing comment syntax by file type; files of other types only lose whole comment lines.
_HASH = re.compile(r"(?<=\s)#")
_SLASHES = re.compile(r"(?<=\s)//")
_DASHES = re.compile(r"(?<=\s)--(?=\s|$)")
_STYLE_BY_SUFFIX = {
    **dict.fromkeys(
        ("py", "rb", "sh", "bash", "zsh", "yaml", "yml", "toml", "env", "ini", "cfg", "conf", "properties", "r"),
        _HASH,
    ),
    **dict.fromkeys(("tf", "hcl"), re.compile(r"(?<=\s)(?:#|//)")),
    **dict.fromkeys(
        ("js", "jsx", "mjs", "cjs", "ts", "tsx", "go", "java", "kt", "kts", "scala", "groovy", "gradle", "c", "h"),
        _SLASHES,
    ),
    **dict.fromkeys(("cc", "cpp", "hpp", "cs", "rs", "swift", "php", "proto", "dart"), _SLASHES),
    **dict.fromkeys(("sql", "lua"), _DASHES),
}
_STYLE_BY_NAME = {"dockerfile": _HASH, "makefile": _HASH, "gemfile": _HASH, "procfile": _HASH}

# Quotes, brackets and escapes: all the scanner stops at.
_TOKEN = re.compile(r"""\\.|\"\"\"|'''|[`"'()\[\]]""")
_OPENS, _CLOSES = "([", ")]"
_ENDS_OPEN = re.compile(r"(?:[+%=\\(\[]|\|\||&&|\.|\?|:=|=>|\b(?:and|or))\s*$")
_STARTS_AS_CONTINUATION = re.compile(r"^\s*(?:[+%.)\]?]|\|\||&&|\b(?:and|or)\b)(?![+=-])")
# Files read line by line: a config line ending in `=` (`PASSWORD=`) is an empty value, and the
# next line is the next key, not its continuation.
_LINE_ORIENTED = {
    "yaml",
    "yml",
    "env",
    "ini",
    "cfg",
    "conf",
    "properties",
    "toml",
    "json",
    "md",
    "markdown",
    "rst",
    "txt",
    "csv",
    "pem",
    "key",
    "crt",
    "lock",
    "example",
}


def comment_style(path: str) -> re.Pattern[str] | None:
    """Where a trailing comment starts in files at `path`, or None (only whole comment lines)."""
    name = path.lower().rsplit("/", 1)[-1]
    if name in _STYLE_BY_NAME or name.startswith("dockerfile"):
        return _STYLE_BY_NAME.get(name, _HASH)
    if name.startswith(".env"):
        return _HASH
    return _STYLE_BY_SUFFIX.get(name.rsplit(".", 1)[-1]) if "." in name else None


def line_oriented(path: str) -> bool:
    """Whether files at `path` are read one line at a time (configuration, prose, key material)."""
    name = path.lower().rsplit("/", 1)[-1]
    return name.startswith(".env") or ("." in name and name.rsplit(".", 1)[-1] in _LINE_ORIENTED)


def read_code(text: str, quote: str | None, comment: re.Pattern[str] | None) -> tuple[str, int, str | None]:
    """One line's code (trailing comment cut), its bracket balance, and the string left open.

    `quote` is the multi-line string (`\"\"\"`, `'''` or a backtick) the line starts inside.
    Single-quoted strings end with their line, as they do in every language rules read.
    """
    depth, end, position = 0, len(text), 0
    while True:
        token = _TOKEN.search(text, position)
        stop = token.start() if token else len(text)
        if quote is None and comment is not None:
            found = comment.search(text, position, stop)
            if found:
                end = found.start()
                break
        if token is None:
            break
        item, position = token.group(0), token.end()
        if item.startswith("\\"):
            continue
        if quote is not None:
            if item == quote:
                quote = None
            continue
        if item in _OPENS:
            depth += 1
        elif item in _CLOSES:
            depth -= 1
        elif item in ('"""', "'''", "`"):
            quote = item
        else:  # a one-line string: skip to its closing quote on this line
            closing = re.compile(r"\\.|" + re.escape(item))
            while (found := closing.search(text, position)) and found.group(0) != item:
                position = found.end()
            position = found.end() if found else len(text)
    return text[:end].rstrip(), depth, quote


@dataclass(frozen=True)
class Statement:
    """Consecutive lines read as one: `text` as written, `code` without comments.

    `lines[i]` is the new-file line of part i; `text_starts[i]` and `code_starts[i]` are where
    that part starts in `text` and `code` (parts are joined by one space).
    """

    text: str
    code: str
    lines: tuple[int, ...]
    text_starts: tuple[int, ...]
    code_starts: tuple[int, ...]
    _readings: dict[bool, list[str]] = field(default_factory=dict, compare=False, repr=False)

    def readings(self, *, code: bool) -> list[str]:
        """The other ways `code` (or `text`) can be read for a secret (decoding.py), worked out once."""
        if code not in self._readings:
            self._readings[code] = variants(self.code if code else self.text)
        return self._readings[code]

    def line_at(self, offset: int, *, code: bool) -> int:
        """The new-file line of the part holding character `offset` of `code` (or `text`)."""
        starts = self.code_starts if code else self.text_starts
        return self.lines[max(bisect.bisect_right(starts, offset) - 1, 0)]

    @classmethod
    def single(cls, text: str, line: int = 1) -> Statement:
        """One line read as it is, comments and all (descriptions, paths)."""
        return cls(text, text, (line,), (0,), (0,))


def _join(parts: list[tuple[int, str, str]]) -> Statement:
    text_starts, code_starts, at_text, at_code = [], [], 0, 0
    for _, text, code in parts:
        text_starts.append(at_text)
        code_starts.append(at_code)
        at_text += len(text) + 1
        at_code += len(code) + 1
    return Statement(
        text=" ".join(text for _, text, _ in parts),
        code=" ".join(code for _, _, code in parts),
        lines=tuple(line for line, _, _ in parts),
        text_starts=tuple(text_starts),
        code_starts=tuple(code_starts),
    )


def statements(lines: Iterable[DiffLine], path: str) -> list[Statement]:
    """The statements `lines` (one kind, in diff order) make in the file at `path`."""
    comment, joinable = comment_style(path), not line_oriented(path)
    found: list[Statement] = []
    parts: list[tuple[int, str, str]] = []
    depth, quote, chars, previous = 0, None, 0, None
    for item in lines:
        number = item.old_line if item.kind == "removed" and item.old_line is not None else item.line
        if is_comment(item.text) and quote is None:
            code, delta, after = "", 0, None
        else:
            code, delta, after = read_code(item.text, quote, comment)
        joins = (
            joinable
            and parts
            and previous is not None
            and number - previous in (0, 1)
            and len(parts) < MAX_LINES
            and chars + len(item.text) < MAX_CHARS
            and (
                depth > 0 or quote is not None or _ENDS_OPEN.search(parts[-1][2]) or _STARTS_AS_CONTINUATION.match(code)
            )
        )
        if parts and not joins:
            found.append(_join(parts))
            parts, depth, chars = [], 0, 0
            if quote is not None:  # the string ran past the cut: read the rest as code again
                code, delta, after = read_code(item.text, None, comment)
        parts.append((item.line, item.text, code))
        depth, quote, chars, previous = max(depth + delta, 0), after, chars + len(item.text) + 1, number
    if parts:
        found.append(_join(parts))
    return found
