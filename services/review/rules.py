"""Review rules: loaded from TOML data, validated, and compiled once.

`[[rule]]` tables match regexes against the lines a diff adds or removes (or path globs, for
"this file changed"); `[[requirement]]` tables say what releases with some labels must carry.
`[terms]` and `[globs]` are named lists reused as `{{name}}` and `@name`. The header of
`rules/security.toml` documents every field.
"""

from __future__ import annotations

import dataclasses
import re
import time
import tomllib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn

# `regex`, not `re`, for the rules files' patterns: it takes lookbehinds like `re`, and also a
# `timeout` on every search, and it lets go of the GIL while it matches, so a slow line costs a
# worker thread its budget, never the event loop its heartbeats.
import regex

from contracts.reviews import Severity, Verdict
from services.review.diffs import blank_strings, is_comment

SCOPES = ("added", "removed", "both", "file")
SEVERITY_RANK = {Severity.INFO: 0, Severity.LOW: 1, Severity.MEDIUM: 2, Severity.HIGH: 3, Severity.CRITICAL: 4}
_SEVERITY_VERDICT = {  # what a finding pushes towards, unless its rule sets `verdict`
    Severity.CRITICAL: Verdict.REJECT,
    Severity.HIGH: Verdict.REJECT,
    Severity.MEDIUM: Verdict.NEEDS_HUMAN,
    Severity.LOW: Verdict.APPROVE,
    Severity.INFO: Verdict.APPROVE,
}
_CHECK_FIELDS = {"id", "title", "severity", "message", "verdict"}
_RULE_FIELDS = _CHECK_FIELDS | {
    "scope",
    "pattern",
    "paths",
    "exclude_paths",
    "ignore",
    "skip_comments",
    "blank_strings",
    "secret",
}
_REQUIREMENT_FIELDS = _CHECK_FIELDS | {"labels", "changed_path", "description"}
_TERM = re.compile(r"\{\{(\w+)\}\}")


class RulesFileInvalid(ValueError):
    """A rules file that cannot be used; the message names the file, the rule and the field."""


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


# The packaged rules search a short line keeping the GIL and without the engine's timeout: both
# cost more than such a search itself (at C=128 they tripled the CPU a review costs), and a
# linear pattern is done with a short line in microseconds. A long line, or any line under a
# rules file from elsewhere (its patterns may backtrack even on a short one), is searched with
# the review's deadline as timeout and without the GIL, so the event loop runs meanwhile.
_LONG_LINE_CHARS = 2048


def search(pattern: regex.Pattern, text: str, deadline: Deadline = NO_DEADLINE, *, proven: bool = False) -> bool:
    """Whether `pattern` occurs in `text`, giving up (`RulesTimedOut`) at `deadline`.

    `proven`: the pattern is one of the packaged rules, whose time is linear in the line's length
    (tests/services/review/test_review_budget.py): on a short line it needs neither the
    engine's timeout nor to let go of the GIL.
    """
    if proven and len(text) < _LONG_LINE_CHARS:
        return pattern.search(text, concurrent=False) is not None  # the scan checks the deadline per rule
    left = deadline.left()
    try:
        return pattern.search(text, timeout=left, concurrent=True) is not None
    except TimeoutError:
        raise RulesTimedOut() from None


@lru_cache(maxsize=65536)  # pure, and paths repeat from release to release: each rule asks once
def path_matches(path: str, globs: tuple[str, ...]) -> bool:
    """Case-insensitive glob match; a glob without `/` also matches the file name anywhere."""
    path, name = path.lower(), path.lower().rsplit("/", 1)[-1]
    return any(fnmatchcase(path, g) or ("/" not in g and fnmatchcase(name, g)) for g in globs)


@dataclass(frozen=True, kw_only=True)
class Check:
    """What every rule and requirement has: an id, how bad it is, and what to tell the author."""

    id: str
    title: str
    severity: Severity
    message: str
    verdict: Verdict | None = None
    proven: bool = False  # a packaged rule: its patterns are linear (see `search`)

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

    def applies_to(self, path: str) -> bool:
        """Whether files at `path` are in this rule's reach."""
        included = not self.paths or path_matches(path, self.paths)
        return included and not path_matches(path, self.exclude_paths)

    def matches(self, text: str, deadline: Deadline = NO_DEADLINE) -> bool:
        """Whether one diff line (without its +/- marker) triggers this rule; `RulesTimedOut` at `deadline`."""
        if self.skip_comments and is_comment(text):
            return False
        subject = blank_strings(text) if self.blank_strings else text
        if self.proven and len(text) < _LONG_LINE_CHARS and len(subject) < _LONG_LINE_CHARS:
            # the common case, without a call per pattern (see `search`)
            if not any(pattern.search(subject, concurrent=False) for pattern in self.patterns):
                return False
            return not any(pattern.search(text, concurrent=False) for pattern in self.ignore)
        if not any(search(pattern, subject, deadline, proven=self.proven) for pattern in self.patterns):
            return False
        return not any(search(pattern, text, deadline, proven=self.proven) for pattern in self.ignore)


@dataclass(frozen=True, kw_only=True)
class Requirement(Check):
    """Something releases with certain labels must carry: a changed file or a description line."""

    labels: frozenset[str]
    changed_path: tuple[str, ...] = ()
    description: regex.Pattern | None = None

    def applies(self, labels: list[str]) -> bool:
        """Whether a release with these labels must meet this requirement."""
        return any(label.strip().lower() in self.labels for label in labels)

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


def load_rules(name: str, path: Path | None = None) -> RuleSet:
    """Load and validate the rules file `name` (packaged), or the file at `path`.

    Raises `RulesFileInvalid` naming the rule id and field when the file is not usable.
    """
    if path is not None:
        return parse_rules(path.read_text(encoding="utf-8"), source=str(path), name=name)
    return _load_packaged(name)


@lru_cache(maxsize=8)  # packaged files never change at runtime: compile once per process
def _load_packaged(name: str) -> RuleSet:
    folder = resources.files("services.review").joinpath("rules")
    resource = folder.joinpath(f"{name}.toml")
    if not re.fullmatch(r"[a-z][a-z0-9_-]*", name) or not resource.is_file():
        known = sorted(item.name.removesuffix(".toml") for item in folder.iterdir() if item.name.endswith(".toml"))
        raise RulesFileInvalid(f"No rules file named {name!r}; packaged rules are: {', '.join(known)}.")
    return parse_rules(resource.read_text(encoding="utf-8"), source=f"{name}.toml", name=name, proven=True)


def parse_rules(text: str, *, source: str, name: str, proven: bool = False) -> RuleSet:
    """Validate and compile the TOML text of a rules file.

    `proven`: the packaged files, whose patterns the tests prove linear; any other file's patterns
    are searched with a timeout on every line.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RulesFileInvalid(f"{source}: not valid TOML ({exc}); fix the syntax.") from exc
    terms = _read_named(data.get("terms", {}), source, "terms", expand=True)
    globs = _read_named(data.get("globs", {}), source, "globs", expand=False)
    rules = tuple(_read_rule(raw, i, source, terms, globs) for i, raw in _tables(data, "rule", source))
    requirements = tuple(_read_requirement(raw, i, source, globs) for i, raw in _tables(data, "requirement", source))
    if not rules and not requirements:
        raise RulesFileInvalid(f"{source}: no [[rule]] or [[requirement]] tables; add at least one.")
    if twice := [key for key, n in Counter(item.id for item in (*rules, *requirements)).items() if n > 1]:
        raise RulesFileInvalid(f"{source}: rule {twice[0]}: field 'id' is used twice; give each rule its own id.")
    if proven:
        rules = tuple(dataclasses.replace(rule, proven=True) for rule in rules)
        requirements = tuple(dataclasses.replace(item, proven=True) for item in requirements)
    return RuleSet(name=name, rules=rules, requirements=requirements)


def _tables(data: dict[str, Any], key: str, source: str) -> list[tuple[int, Any]]:
    tables = data.get(key, [])
    if not isinstance(tables, list):
        raise RulesFileInvalid(f"{source}: write each {key} as [[{key}]] (an array of tables), not [{key}].")
    return list(enumerate(tables, start=1))


class _Reader:
    """Typed access to one rule table, with errors that name the rule and the field."""

    def __init__(self, raw: Any, index: int, source: str, kind: str, allowed: set[str]) -> None:
        self.where = f"{source}: {kind} #{index}"
        if not isinstance(raw, dict):
            raise RulesFileInvalid(f"{self.where}: expected a table, got {type(raw).__name__}.")
        self.raw = raw
        rule_id = raw.get("id")
        if not isinstance(rule_id, str) or not re.fullmatch(r"[A-Z]{2,8}\d{3,4}", rule_id):
            self.fail("id", "is missing or not like 'SEC001' (letters then digits)")
        self.id = rule_id
        self.where = f"{source}: {kind} {rule_id}"
        for unknown in sorted(set(raw) - allowed):
            self.fail(unknown, f"is not a known field; use one of {', '.join(sorted(allowed))}")

    def fail(self, field: str, problem: str) -> NoReturn:
        raise RulesFileInvalid(f"{self.where}: field {field!r} {problem}.")

    def text(self, field: str, default: str | None = None) -> str:
        if not isinstance(value := self.raw.get(field, default), str) or not value.strip():
            self.fail(field, "must be a non-empty string")
        return value.strip()

    def flag(self, field: str, default: bool) -> bool:
        if not isinstance(value := self.raw.get(field, default), bool):
            self.fail(field, "must be true or false")
        return value

    def strings(self, field: str) -> tuple[str, ...]:
        value = self.raw.get(field, [])
        value = [value] if isinstance(value, str) else value
        if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
            self.fail(field, "must be a string or a list of non-empty strings")
        return tuple(value)

    def globs(self, field: str, named: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
        """Path globs, lower-cased; `@name` stands for the list `[globs] name`."""
        found: list[str] = []
        for glob in self.strings(field):
            if glob.startswith("@") and glob[1:] not in named:
                self.fail(field, f"uses {glob}, which is not defined under [globs]")
            found.extend(named[glob[1:]] if glob.startswith("@") else [glob.lower()])
        return tuple(found)

    def choice(self, field: str, options: type[Severity] | type[Verdict]) -> Any:
        value = self.raw.get(field)
        if value is None and options is Verdict:
            return None  # `verdict` is optional: the severity decides
        if value not in {option.value for option in options}:
            self.fail(field, f"is {value!r}; use one of {', '.join(option.value for option in options)}")
        return options(value)

    def common(self) -> dict[str, Any]:
        """The `Check` fields, validated."""
        return {
            "id": self.id,
            "title": self.text("title"),
            "severity": self.choice("severity", Severity),
            "message": self.text("message"),
            "verdict": self.choice("verdict", Verdict),
        }

    def regex(self, field: str, source: str, terms: dict[str, str]) -> regex.Pattern:
        if unknown := [m.group(0) for m in _TERM.finditer(source) if m.group(1) not in terms]:
            self.fail(field, f"uses unknown term {unknown[0]}; define it under [terms]")
        try:
            return regex.compile(_TERM.sub(lambda m: terms[m.group(1)], source))
        except regex.error as exc:
            self.fail(field, f"is not a valid regular expression ({exc}): {source!r}")


def _read_named(raw: Any, source: str, table: str, expand: bool) -> dict[str, Any]:
    """`[terms]` (regex fragments, later terms may use earlier ones) or `[globs]` (path lists)."""
    if not isinstance(raw, dict):
        raise RulesFileInvalid(f"{source}: [{table}] must be a table of lists of strings.")
    named: dict[str, Any] = {}
    for key, values in raw.items():
        if not isinstance(values, list) or not values or not all(isinstance(v, str) and v for v in values):
            raise RulesFileInvalid(f"{source}: {table}.{key} must be a non-empty list of strings.")
        if not expand:
            named[key] = tuple(v.lower() for v in values)
        elif unknown := [m.group(0) for m in _TERM.finditer("".join(values)) if m.group(1) not in named]:
            raise RulesFileInvalid(f"{source}: terms.{key} uses {unknown[0]} before it is defined.")
        else:
            named[key] = _TERM.sub(lambda m: named[m.group(1)], "(?:" + "|".join(values) + ")")
    return named


def _read_rule(raw: Any, index: int, source: str, terms: dict[str, str], globs: dict[str, Any]) -> Rule:
    read = _Reader(raw, index, source, "rule", _RULE_FIELDS)
    scope = read.text("scope", "added")
    if scope not in SCOPES:
        read.fail("scope", f"is {scope!r}; use one of {', '.join(SCOPES)}")
    patterns = tuple(read.regex("pattern", p, terms) for p in read.strings("pattern"))
    if (scope == "file") == bool(patterns):
        read.fail("pattern", 'is required, except with scope = "file" where it must be left out')
    paths = read.globs("paths", globs)
    if scope == "file" and not paths:
        read.fail("paths", 'is required when scope = "file"')
    return Rule(
        **read.common(),
        scope=scope,
        patterns=patterns,
        paths=paths,
        exclude_paths=read.globs("exclude_paths", globs),
        ignore=tuple(read.regex("ignore", p, terms) for p in read.strings("ignore")),
        skip_comments=read.flag("skip_comments", True),
        blank_strings=read.flag("blank_strings", False),
        secret=read.flag("secret", False),
    )


def _read_requirement(raw: Any, index: int, source: str, globs: dict[str, Any]) -> Requirement:
    read = _Reader(raw, index, source, "requirement", _REQUIREMENT_FIELDS)
    if not (labels := read.strings("labels")):
        read.fail("labels", "must list the labels that need this requirement")
    if ("changed_path" in raw) == ("description" in raw):
        read.fail("changed_path", "or 'description' must be set, and not both")
    description = read.regex("description", read.text("description"), {}) if "description" in raw else None
    return Requirement(
        **read.common(),
        labels=frozenset(label.lower() for label in labels),
        changed_path=read.globs("changed_path", globs),
        description=description,
    )
