"""Review rules: loaded from TOML data, validated, and compiled once.

`[[rule]]` tables match regexes against the statements a diff adds or removes (or path globs,
for "this file changed"), and optionally against the release's description and file paths;
`[[requirement]]` tables say what releases with some labels must carry. `[terms]` and `[globs]`
are named lists reused as `{{name}}` and `@name`; `include = ["shared"]` adds the rules of
another file of the same folder. The header of `rules/security.toml` documents every field;
checks.py holds the compiled rules and how they match.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections import Counter
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn

import regex

from contracts.reviews import Severity, Verdict
from services.review.checks import (
    NO_DEADLINE,
    SCOPES,
    SEVERITY_RANK,
    TARGETS,
    Check,
    Deadline,
    Requirement,
    Rule,
    RuleSet,
    RulesTimedOut,
    combine,
    path_matches,
    search,
)

__all__ = [
    "NO_DEADLINE",
    "SEVERITY_RANK",
    "Check",
    "Deadline",
    "Requirement",
    "Rule",
    "RuleSet",
    "RulesFileInvalid",
    "RulesTimedOut",
    "load_rules",
    "parse_rules",
    "path_matches",
    "search",
]

_CHECK_FIELDS = {"id", "title", "severity", "message", "verdict", "family"}
_RULE_FIELDS = _CHECK_FIELDS | {
    "scope",
    "pattern",
    "paths",
    "exclude_paths",
    "ignore",
    "skip_comments",
    "blank_strings",
    "secret",
    "decode",
    "targets",
    "near",
    "not_near",
    "near_lines",
    "near_in",
}
_REQUIREMENT_FIELDS = _CHECK_FIELDS | {"labels", "changed_path", "description"}
_TERM = re.compile(r"\{\{(\w+)\}\}")
_FAMILY = re.compile(r"[a-z][a-z0-9-]*")


class RulesFileInvalid(ValueError):
    """A rules file that cannot be used; the message names the file, the rule and the field."""


def load_rules(name: str, path: Path | None = None) -> RuleSet:
    """Load and validate the rules file `name` (packaged), or the file at `path`.

    Raises `RulesFileInvalid` naming the rule id and field when the file is not usable.
    """
    if path is not None:
        return parse_rules(
            path.read_text(encoding="utf-8"),
            source=str(path),
            name=name,
            include=lambda other: load_rules(other, path.with_name(f"{other}.toml")),
        )
    return _load_packaged(name)


def _packaged_folder():
    return resources.files("services.review").joinpath("rules")


@lru_cache(maxsize=8)  # packaged files never change at runtime: compile once per process
def _load_packaged(name: str) -> RuleSet:
    folder = _packaged_folder()
    resource = folder.joinpath(f"{name}.toml")
    if not re.fullmatch(r"[a-z][a-z0-9_-]*", name) or not resource.is_file():
        known = sorted(item.name.removesuffix(".toml") for item in folder.iterdir() if item.name.endswith(".toml"))
        raise RulesFileInvalid(f"No rules file named {name!r}; packaged rules are: {', '.join(known)}.")
    text = resource.read_text(encoding="utf-8")
    return parse_rules(text, source=f"{name}.toml", name=name, proven=True, include=_load_packaged)


def parse_rules(text: str, *, source: str, name: str, proven: bool = False, include: Any = None) -> RuleSet:
    """Validate and compile the TOML text of a rules file.

    `proven`: the packaged files, whose patterns the tests prove linear; any other file's patterns
    are searched with a timeout on every line. `include(name)` loads a file that this one's
    `include = [...]` names (its rules join these, its terms and globs stay its own).
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RulesFileInvalid(f"{source}: not valid TOML ({exc}); fix the syntax.") from exc
    unknown = sorted(set(data) - {"terms", "globs", "rule", "requirement", "include"})
    if unknown:
        raise RulesFileInvalid(
            f"{source}: unknown top-level key {unknown[0]!r}; use terms, globs, rule, requirement, include."
        )
    terms = _read_named(data.get("terms", {}), source, "terms", expand=True)
    globs = _read_named(data.get("globs", {}), source, "globs", expand=False)
    rules = tuple(_read_rule(raw, i, source, terms, globs) for i, raw in _tables(data, "rule", source))
    requirements = tuple(_read_requirement(raw, i, source, globs) for i, raw in _tables(data, "requirement", source))
    for other in _included(data, source):
        if include is None:
            raise RulesFileInvalid(f"{source}: include {other!r} cannot be resolved here; load the file from a folder.")
        included = include(other)
        rules, requirements = (*rules, *included.rules), (*requirements, *included.requirements)
    if not rules and not requirements:
        raise RulesFileInvalid(f"{source}: no [[rule]] or [[requirement]] tables; add at least one.")
    if twice := [key for key, n in Counter(item.id for item in (*rules, *requirements)).items() if n > 1]:
        raise RulesFileInvalid(f"{source}: rule {twice[0]}: field 'id' is used twice; give each rule its own id.")
    if proven:
        rules = tuple(dataclasses.replace(rule, proven=True) for rule in rules)
        requirements = tuple(dataclasses.replace(item, proven=True) for item in requirements)
    return RuleSet(name=name, rules=rules, requirements=requirements)


def _included(data: dict[str, Any], source: str) -> list[str]:
    names = data.get("include", [])
    if not isinstance(names, list) or not all(
        isinstance(n, str) and re.fullmatch(r"[a-z][a-z0-9_-]*", n) for n in names
    ):
        raise RulesFileInvalid(f'{source}: include must be a list of rules file names, e.g. include = ["shared"].')
    return names


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
            "family": self.family(),
        }

    def family(self) -> str:
        value = self.raw.get("family", "other")
        if not isinstance(value, str) or not _FAMILY.fullmatch(value):
            self.fail("family", "must be a lower-case name like 'secrets' or 'sql-injection'")
        return value

    def option(self, field: str, options: tuple[str, ...], default: str) -> str:
        if (value := self.raw.get(field, default)) not in options:
            self.fail(field, f"is {value!r}; use one of {', '.join(options)}")
        return value

    def number(self, field: str, default: int, low: int, high: int) -> int:
        value = self.raw.get(field, default)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            self.fail(field, f"must be a whole number from {low} to {high}")
        return value

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
    targets = read.strings("targets") or ("diff",)
    if unknown := [t for t in targets if t not in TARGETS]:
        read.fail("targets", f"names {unknown[0]!r}; use any of {', '.join(TARGETS)}")
    secret = read.flag("secret", False)
    return Rule(
        **read.common(),
        scope=scope,
        patterns=patterns,
        combined=combine(patterns),
        paths=paths,
        exclude_paths=read.globs("exclude_paths", globs),
        ignore=tuple(read.regex("ignore", p, terms) for p in read.strings("ignore")),
        skip_comments=read.flag("skip_comments", True),
        blank_strings=read.flag("blank_strings", False),
        secret=secret,
        decode=read.flag("decode", secret),
        targets=targets,
        near=tuple(read.regex("near", p, terms) for p in read.strings("near")),
        not_near=tuple(read.regex("not_near", p, terms) for p in read.strings("not_near")),
        near_lines=read.number("near_lines", 3, 0, 50),
        near_in=read.option("near_in", ("new", "added"), "new"),
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
