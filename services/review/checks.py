"""Compiled review rules and how each one reads a statement, a path or a release's labels.

`rules.py` loads them from the TOML files; `offline.py` applies them to a release. Every search
runs within the review's deadline (`Deadline`): a rules file from elsewhere is searched with the
`regex` engine's timeout, the packaged ones — proven linear by the tests — without it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import lru_cache

# `regex`, not `re`, for the rules files' patterns: it takes lookbehinds like `re`, and also a
# `timeout` on every search, and it lets go of the GIL while it matches, so a slow line costs a
# worker thread its budget, never the event loop its heartbeats.
import regex

from contracts.reviews import Severity, Verdict
from services.review.diffs import blank_strings
from services.review.statements import Statement

SCOPES = ("added", "removed", "both", "file")
TARGETS = ("diff", "description", "path")
SEVERITY_RANK = {Severity.INFO: 0, Severity.LOW: 1, Severity.MEDIUM: 2, Severity.HIGH: 3, Severity.CRITICAL: 4}
VERDICT_RANK = {Verdict.APPROVE: 0, Verdict.NEEDS_HUMAN: 1, Verdict.REJECT: 2}
_SEVERITY_VERDICT = {  # what a finding pushes towards, unless its rule sets `verdict`
    Severity.CRITICAL: Verdict.REJECT,
    Severity.HIGH: Verdict.REJECT,
    Severity.MEDIUM: Verdict.NEEDS_HUMAN,
    Severity.LOW: Verdict.APPROVE,
    Severity.INFO: Verdict.APPROVE,
}
_LABEL_WORDS = re.compile(r"[a-z0-9]+")


def severity_verdict(severity: Severity) -> Verdict:
    """The verdict a finding of `severity` pushes towards when its rule says nothing else."""
    return _SEVERITY_VERDICT[severity]


class RulesTimedOut(Exception):
    """Rule matching ran out of its time budget; `path` and `line` say what it was reading."""

    def __init__(self, path: str | None = None, line: int | None = None) -> None:
        super().__init__(f"rule matching ran out of time at {path or '?'}:{line or '?'}")
        self.path, self.line = path, line


@dataclass(frozen=True)
class Deadline:
    """When rule matching must stop, on `clock`; `at=None` never stops it."""

    at: float | None = None
    clock: Callable[[], float] = time.monotonic

    @classmethod
    def after(cls, seconds: float | None, *, clock: Callable[[], float] = time.monotonic) -> Deadline:
        """The deadline `seconds` from now (none for `None`)."""
        return cls(None if seconds is None else clock() + seconds, clock)

    def left(self) -> float | None:
        """Seconds left (`None`: no limit). Raises `RulesTimedOut` when there are none."""
        if self.at is None:
            return None
        if (left := self.at - self.clock()) <= 0:
            raise RulesTimedOut()
        return left


NO_DEADLINE = Deadline()


# The packaged rules search a short text keeping the GIL and without the engine's timeout: both
# cost more than such a search itself (at C=128 they tripled the CPU a review costs), and a
# linear pattern is done with a short text in microseconds. A long text, or any text under a
# rules file from elsewhere (its patterns may backtrack even on a short one), is searched with
# the review's deadline as timeout and without the GIL, so the event loop runs meanwhile.
_LONG_LINE_CHARS = 2048


def first_match(
    pattern: regex.Pattern, text: str, deadline: Deadline = NO_DEADLINE, *, proven: bool = False
) -> int | None:
    """Where `pattern` first occurs in `text` (None: nowhere), giving up (`RulesTimedOut`) at `deadline`.

    `proven`: the pattern is one of the packaged rules, whose time is linear in the text's length
    (tests/services/review/test_review_budget.py): on a short text it needs neither the engine's
    timeout nor to let go of the GIL.
    """
    if proven and len(text) < _LONG_LINE_CHARS:
        found = pattern.search(text, concurrent=False)  # the scan checks the deadline per rule
    else:
        try:
            found = pattern.search(text, timeout=deadline.left(), concurrent=True)
        except TimeoutError:
            raise RulesTimedOut() from None
    return None if found is None else found.start()


def search(pattern: regex.Pattern, text: str, deadline: Deadline = NO_DEADLINE, *, proven: bool = False) -> bool:
    """Whether `pattern` occurs in `text` (see `first_match`)."""
    return first_match(pattern, text, deadline, proven=proven) is not None


_LEADING_FLAGS = re.compile(r"^\(\?([aiLmsux]+)\)")
_NUMBERED_GROUP_REFERENCE = re.compile(r"\\[1-9]|\(\?P=|\\g<")


def combine(patterns: tuple[regex.Pattern, ...]) -> regex.Pattern | None:
    """`patterns` as one alternation, found anywhere any of them is — or None when they cannot be
    joined safely (one pattern alone, or a back-reference whose group number would shift).

    A rule's patterns are searched on every statement of every release: on a short statement one
    search of the alternation costs far less than a search per pattern (on a long one the
    patterns apart are faster). A leading `(?i)` becomes `(?i:…)`.
    """
    if len(patterns) < 2 or any(_NUMBERED_GROUP_REFERENCE.search(p.pattern) for p in patterns):
        return None
    parts = []
    for pattern in patterns:
        flags = _LEADING_FLAGS.match(pattern.pattern)
        body = pattern.pattern[flags.end() :] if flags else pattern.pattern
        parts.append(f"(?{flags.group(1)}:{body})" if flags else f"(?:{body})")
    return regex.compile("|".join(parts))


@lru_cache(maxsize=65536)  # pure, and paths repeat from release to release: each rule asks once
def path_matches(path: str, globs: tuple[str, ...]) -> bool:
    """Case-insensitive glob match; a glob without `/` also matches the file name anywhere."""
    path, name = path.lower(), path.lower().rsplit("/", 1)[-1]
    return any(fnmatchcase(path, g) or ("/" not in g and fnmatchcase(name, g)) for g in globs)


def label_words(label: str) -> tuple[str, ...]:
    """A label as the words that matter: `PCI-DSS`, `pci_dss` and `scope:pci` all start with `pci`.

    Lower-cased, split at anything not a letter or digit, after the last `:` or `/` (a label's
    namespace, as in `scope:pci` or `compliance/gdpr`).
    """
    return tuple(_LABEL_WORDS.findall(re.split(r"[:/]", label.strip().lower())[-1]))


@dataclass(frozen=True, kw_only=True)
class Check:
    """What every rule and requirement has: an id, how bad it is, and what to tell the author.

    `family` groups checks by the kind of problem they find (`secrets`, `sql-injection`,
    `pii-logging` …): `mesh eval` reports precision and recall per family.
    """

    id: str
    title: str
    severity: Severity
    message: str
    verdict: Verdict | None = None
    family: str = "other"
    proven: bool = False  # a packaged rule: its patterns are linear (see `first_match`)

    @property
    def effect(self) -> Verdict:
        """The verdict a finding of this check pushes towards."""
        return self.verdict or _SEVERITY_VERDICT[self.severity]


@dataclass(frozen=True, kw_only=True)
class Rule(Check):
    """One compiled line or file rule; the rules files say what each field means."""

    scope: str
    patterns: tuple[regex.Pattern, ...]
    paths: tuple[str, ...] = ()
    exclude_paths: tuple[str, ...] = ()
    ignore: tuple[regex.Pattern, ...] = ()
    skip_comments: bool = True
    blank_strings: bool = False
    secret: bool = False
    decode: bool = False
    targets: tuple[str, ...] = ("diff",)
    near: tuple[regex.Pattern, ...] = ()
    not_near: tuple[regex.Pattern, ...] = ()
    near_lines: int = 3
    near_in: str = "new"  # "new": added and context lines; "added": only the lines this change adds
    # `patterns` as one alternation (see `combine`): one search instead of one per pattern
    combined: regex.Pattern | None = None

    def applies_to(self, path: str) -> bool:
        """Whether files at `path` are in this rule's reach."""
        included = not self.paths or path_matches(path, self.paths)
        return included and not path_matches(path, self.exclude_paths)

    def _first(self, text: str, deadline: Deadline) -> int | None:
        # On a long text the patterns apart are faster: each finds its own literals at once.
        if self.combined is not None and len(text) < _LONG_LINE_CHARS:
            return first_match(self.combined, text, deadline, proven=self.proven)
        for pattern in self.patterns:
            if (start := first_match(pattern, text, deadline, proven=self.proven)) is not None:
                return start
        return None

    def _ignored(self, text: str, deadline: Deadline) -> bool:
        return any(search(pattern, text, deadline, proven=self.proven) for pattern in self.ignore)

    def find(self, statement: Statement, deadline: Deadline = NO_DEADLINE) -> int | None:
        """The new-file line where this rule fires on `statement`, or None; `RulesTimedOut` at `deadline`.

        Comment-skipping rules read the statement's code, the others its text as written; a
        `decode` rule also reads it glued, unescaped and base64-decoded (decoding.py).
        """
        code = self.skip_comments
        subject = statement.code if code else statement.text
        if not subject or subject.isspace():
            return None
        seen = blank_strings(subject) if self.blank_strings else subject
        start = self._first(seen, deadline)
        if start is not None:
            if self._ignored(subject, deadline):
                return None
            return statement.lines[0] if self.blank_strings else statement.line_at(start, code=code)
        if self.decode:
            for reading in statement.readings(code=code):
                if self._first(reading, deadline) is not None and not self._ignored(reading, deadline):
                    return statement.lines[0]
        return None

    def is_near(self, new: dict[int, str], added: dict[int, str], line: int, deadline: Deadline = NO_DEADLINE) -> bool:
        """Whether the `near` / `not_near` conditions hold around new-file `line`.

        `new` and `added` are the code of the new file's lines by number: all the diff shows
        (added and context), and only the added ones; `near_in` says which this rule reads.
        """
        if not self.near and not self.not_near:
            return True
        lines = added if self.near_in == "added" else new
        around = [lines[n] for n in range(line - self.near_lines, line + self.near_lines + 1) if lines.get(n)]

        def any_of(patterns: tuple[regex.Pattern, ...]) -> bool:
            return any(search(p, text, deadline, proven=self.proven) for p in patterns for text in around)

        return (not self.near or any_of(self.near)) and not any_of(self.not_near)


@dataclass(frozen=True, kw_only=True)
class Requirement(Check):
    """Something releases with certain labels must carry: a changed file or a description line."""

    labels: frozenset[str]
    changed_path: tuple[str, ...] = ()
    description: regex.Pattern | None = None

    def applies(self, labels: list[str]) -> bool:
        """Whether a release with these labels must meet this requirement.

        Spelling is forgiven: a label applies when its words (`label_words`) start with a
        required label's, so `PCI-DSS`, `pci_dss` and `scope:pci` all count as `pci`.
        """
        wanted = [label_words(label) for label in self.labels]
        given = [label_words(label) for label in labels]
        return any(words and have[: len(words)] == words for have in given for words in wanted)

    def is_met(self, paths: list[str], description: str, deadline: Deadline = NO_DEADLINE) -> bool:
        """Whether a release with these changed paths and this description meets it."""
        if self.changed_path:
            return any(path_matches(path, self.changed_path) for path in paths)
        return bool(self.description and search(self.description, description, deadline, proven=self.proven))


@dataclass(frozen=True)
class RuleSet:
    """All rules of one reviewer, compiled."""

    name: str
    rules: tuple[Rule, ...]
    requirements: tuple[Requirement, ...] = ()

    @property
    def proven(self) -> bool:
        """Whether every pattern is a packaged one, proven linear by the tests."""
        return all(check.proven for check in (*self.rules, *self.requirements))

    @property
    def checks(self) -> dict[str, Check]:
        """Every rule and requirement by id."""
        return {check.id: check for check in (*self.rules, *self.requirements)}

    @property
    def families(self) -> set[str]:
        """The families of problems these rules look for."""
        return {check.family for check in (*self.rules, *self.requirements)}

    def effect_of(self, rule_id: str, severity: Severity) -> Verdict:
        """The verdict a finding of rule `rule_id` pushes towards (by `severity` for unknown ids)."""
        check = self.checks.get(rule_id)
        return check.effect if check is not None else _SEVERITY_VERDICT[severity]

    def catalogue(self) -> str:
        """One line per rule and requirement, with its advice, for a model's system prompt."""
        return "\n".join(
            f"- {c.id} ({c.severity.value}): {c.title}. {c.message}" for c in (*self.rules, *self.requirements)
        )

    def redact(self, text: str) -> str:
        """`text` with everything a secret rule matches replaced by `[REDACTED]`."""
        for pattern in (pattern for rule in self.rules if rule.secret for pattern in rule.patterns):
            text = pattern.sub("[REDACTED]", text)
        return text
