"""Which rules fire on a release: every rule over the statements of every changed file (and,
where a rule says so, over the title, the description and the file paths), every requirement
over the labels. Pure: no I/O, no clock but the deadline it is given.

A removed line that comes back verbatim in another file *of the same type* was moved, not
removed: `@login_required` moved from `api.py` to `routes.py` is no finding, but the same line
"moved" into a Markdown file protects nothing and is one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from contracts.releases import Change, ReleaseProposed
from contracts.reviews import Finding, Severity, Verdict
from services.review.checks import NO_DEADLINE, SEVERITY_RANK, Check, Deadline, Rule, RuleSet, RulesTimedOut
from services.review.diffs import DiffLine, ParsedDiff, is_comment, parse_diff, text_lines
from services.review.statements import Statement, comment_style, read_code, statements

INCOMPLETE = "REV001"  # the rule id of "the rules could not finish reading this release"
IN_DESCRIPTION = "In the release's title or description"
IN_PATH = "In the file's path"


@dataclass(frozen=True)
class Hit:
    """A finding and the rule or requirement that produced it."""

    finding: Finding
    source: Check

    @property
    def effect(self) -> Verdict:
        return self.source.effect


def _hit(item: Check, path: str | None, line: int | None, where: str | None = None) -> Hit:
    message = item.message if where is None else f"{where}: {item.message}"
    return Hit(Finding(rule=item.id, severity=item.severity, message=message, file=path, line=line), item)


def incomplete_check(name: str, budget_seconds: float | None) -> Check:
    """The finding of a review whose rules ran out of time: a human must look."""
    budget = f"{budget_seconds:g} s" if budget_seconds is not None else "its time budget"
    return Check(
        id=INCOMPLETE,
        title="Review incomplete: the rules ran out of time",
        severity=Severity.MEDIUM,
        verdict=Verdict.NEEDS_HUMAN,
        family="incomplete",
        message=f"The {name} rules could not read this release within {budget} (MESH_REVIEW_BUDGET_SECONDS): "
        "very long or machine-generated lines (minified code, data blobs) make matching slow. The lines "
        "not read may hide problems, so a human must review the release. Keep generated files out of "
        "releases, or raise the budget.",
    )


def file_type(path: str) -> str:
    """What kind of file `path` is, for telling a move from a disguise: its suffix, or its name."""
    name = path.lower().rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[-1] if "." in name.lstrip(".") else name


@dataclass
class _File:
    """One changed file, read once for every rule."""

    change: Change
    diff: ParsedDiff
    moved: set[str] = field(default_factory=set)  # removed lines that reappear in a file of this type

    @cached_property
    def added(self) -> list[Statement]:
        return statements(self.diff.added, self.change.path) + statements(self.diff.unmarked, self.change.path)

    @cached_property
    def removed(self) -> list[Statement]:
        kept = [line for line in self.diff.removed if line.text.strip() not in self.moved]
        return statements(kept, self.change.path)

    @cached_property
    def new_code(self) -> dict[int, str]:
        """The code of each new-file line the diff shows (added and context), for `near`."""
        return self._code(self.diff.new_file)

    @cached_property
    def added_code(self) -> dict[int, str]:
        """The code of each line this change adds, for `near_in = "added"`."""
        added = {item.line for item in self.diff.added}
        unmarked = self._code(self.diff.unmarked) if self.diff.unmarked else {}
        return {n: code for n, code in self.new_code.items() if n in added} | unmarked

    def _code(self, items: list[DiffLine]) -> dict[int, str]:
        comment, lines = comment_style(self.change.path), {}
        for item in items:
            code = "" if is_comment(item.text) else read_code(item.text, None, comment)[0]
            lines[item.line] = f"{lines[item.line]} {code}" if item.line in lines else code
        return lines

    @property
    def first_line(self) -> int | None:
        lines = self.diff.lines
        return lines[0].line if lines else None


def _scan_file(file: _File, rules: RuleSet, deadline: Deadline, hits: list[Hit]) -> None:
    path = file.change.path
    for rule in rules.rules:
        if "diff" not in rule.targets or not rule.applies_to(path):
            continue
        try:
            deadline.left()  # once per rule and file: short lines are searched without a timeout
        except RulesTimedOut:
            raise RulesTimedOut(path, file.first_line) from None
        if rule.scope == "file":
            hits.append(_hit(rule, path, file.first_line))
            continue
        candidates = [
            *(file.added if rule.scope in ("added", "both") else []),
            *(file.removed if rule.scope in ("removed", "both") else []),
        ]
        for statement in candidates:
            try:
                line = rule.find(statement, deadline)
                if line is not None and rule.is_near(file.new_code, file.added_code, line, deadline):
                    hits.append(_hit(rule, path, line))
            except RulesTimedOut:
                raise RulesTimedOut(path, statement.lines[0]) from None


def _scan_text(proposal: ReleaseProposed, rules: RuleSet, deadline: Deadline, hits: list[Hit]) -> None:
    """The rules that also read the title and description, and the changed files' paths."""
    prose = [Statement.single(line) for line in text_lines(f"{proposal.title}\n{proposal.description}") if line]
    for rule in rules.rules:
        if rule.scope == "file":
            continue
        if "description" in rule.targets and any(rule.find(s, deadline) is not None for s in prose):
            hits.append(_hit(rule, None, None, IN_DESCRIPTION))
        if "path" in rule.targets:
            for change in proposal.changes:
                if rule.applies_to(change.path) and rule.find(Statement.single(change.path), deadline) is not None:
                    hits.append(_hit(rule, change.path, None, IN_PATH))


def scan(
    proposal: ReleaseProposed, rules: RuleSet, *, deadline: Deadline = NO_DEADLINE, incomplete: Check | None = None
) -> list[Hit]:
    """Every rule and requirement that fires on `proposal`, most severe first.

    One hit per rule, file and line, and one secret per line: `AWS_SECRET = "AKIA..."` is an
    AWS key (the first, most specific secret rule in the file), not also a generic secret.
    At `deadline` it stops: the hits so far and one `incomplete` hit where it stopped.
    """
    hits: list[Hit] = []
    try:
        files = [_File(change, parse_diff(change.diff)) for change in proposal.changes]
        added_by_type: dict[str, set[str]] = {}
        for file in files:
            kind = added_by_type.setdefault(file_type(file.change.path), set())
            kind.update(line.text.strip() for line in file.diff.added)
        for file in files:
            file.moved = added_by_type[file_type(file.change.path)]
            _scan_file(file, rules, deadline, hits)
        _scan_text(proposal, rules, deadline, hits)
        paths = [change.path for change in proposal.changes]
        for requirement in rules.requirements:
            if requirement.applies(proposal.labels) and not requirement.is_met(paths, proposal.description, deadline):
                hits.append(_hit(requirement, None, None))
    except RulesTimedOut as stopped:
        hits.append(_hit(incomplete or incomplete_check(rules.name, None), stopped.path, stopped.line))
    unique: dict[tuple[str, str | None, int | None], Hit] = {}
    for hit in hits:  # a value changed in place fires on its removed and its added line
        key = (hit.finding.rule, hit.finding.file, hit.finding.line)
        if isinstance(hit.source, Rule) and hit.source.secret:
            key = ("secret", hit.finding.file, hit.finding.line)
        unique.setdefault(key, hit)
    return sorted(
        unique.values(),
        key=lambda h: (-SEVERITY_RANK[h.finding.severity], h.finding.file or "", h.finding.line or 0, h.finding.rule),
    )
