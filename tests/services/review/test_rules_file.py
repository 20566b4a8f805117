"""Rules files: the packaged ones load, broken ones fail with an error naming rule and field."""

from pathlib import Path

import pytest

from contracts.releases import Change, ReleaseProposed
from contracts.reviews import Verdict
from services.review.offline import OfflineReviewer
from services.review.rules import RulesFileInvalid, load_rules

GOOD_RULE = """
[[rule]]
id = "TST001"
title = "Debug flag"
severity = "low"
pattern = 'DEBUG\\s*=\\s*True'
message = "Debug mode is on; turn it off for production."
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "custom.toml"
    path.write_text(text, encoding="utf-8")
    return path


def release(line: str, path: str = "src/settings.py") -> ReleaseProposed:
    return ReleaseProposed(release_id="rel-7", service="api", version="1.0", changes=[Change(path=path, diff=line)])


@pytest.mark.parametrize("name", ["security", "compliance"])
def test_packaged_rules_load_with_well_formed_unique_ids(name):
    """Both packaged files load, and every rule has a prefix-numbered id (its file's, or INJ for the
    shared ones), a family, a title and a message."""
    rules = load_rules(name)
    items = [*rules.rules, *rules.requirements]
    prefix = {"security": "SEC", "compliance": "CMP"}[name]
    assert len(items) >= 10
    assert all(item.id.startswith((prefix, "INJ")) and item.title and len(item.message) > 40 for item in items)
    assert all(item.family != "other" for item in items)
    assert len({item.id for item in items}) == len(items)
    assert all(f"- {item.id} (" in rules.catalogue() for item in items)


def test_packaged_rules_are_compiled_once():
    """Loading a packaged rules file twice returns the same compiled object."""
    assert load_rules("security") is load_rules("security")


def test_unknown_rules_name_lists_the_packaged_ones():
    """Asking for a reviewer that has no rules file says which ones exist."""
    with pytest.raises(RulesFileInvalid, match=r"No rules file named 'licensing'.*compliance, security"):
        load_rules("licensing")


def test_a_rules_file_from_a_path_is_used_as_given(tmp_path):
    """A custom file drives the reviewer; a low finding is noted but the release is approved."""
    reviewer = OfflineReviewer(load_rules("custom", write(tmp_path, GOOD_RULE)), name="custom")
    assessment = reviewer.review(release("+DEBUG = True\n"))
    assert [(f.rule, f.line) for f in assessment.findings] == [("TST001", 1)]
    assert assessment.verdict is Verdict.APPROVE
    assert assessment.confidence == 0.9


def test_a_rule_can_override_the_verdict_its_severity_implies(tmp_path):
    """`verdict = "needs_human"` on a critical rule escalates instead of rejecting."""
    text = GOOD_RULE.replace('severity = "low"', 'severity = "critical"\nverdict = "needs_human"')
    reviewer = OfflineReviewer(load_rules("custom", write(tmp_path, text)), name="custom")
    assert reviewer.review(release("+DEBUG = True\n")).verdict is Verdict.NEEDS_HUMAN


def test_terms_and_glob_sets_expand_into_patterns_and_paths(tmp_path):
    """`{{term}}` in a pattern and `@name` in a path list are replaced by their definitions."""
    text = """
[terms]
flag = ['DEBUG', 'TESTING']
[globs]
settings = ["settings*.py", "config/*"]
[[rule]]
id = "TST002"
title = "Flag on"
severity = "medium"
pattern = '{{flag}}\\s*=\\s*True'
paths = ["@settings"]
message = "A development flag is on; turn it off for production."
"""
    reviewer = OfflineReviewer(load_rules("custom", write(tmp_path, text)), name="custom")
    assert reviewer.review(release("+TESTING = True\n", "settings_prod.py")).verdict is Verdict.NEEDS_HUMAN
    assert reviewer.review(release("+TESTING = True\n", "src/app.py")).findings == []


BROKEN = [
    ("pattern = '(unclosed'", "TST001", "'pattern' is not a valid regular expression"),
    ('severity = "urgent"', "TST001", "'severity' is 'urgent'; use one of critical, high, medium, low, info"),
    ('scope = "everything"', "TST001", "'scope' is 'everything'"),
    ('verdict = "block"', "TST001", "'verdict' is 'block'"),
    ('exlude_paths = ["tests/*"]', "TST001", "'exlude_paths' is not a known field"),
    ("pattern = '{{secretz}}'", "TST001", "unknown term {{secretz}}"),
    ('paths = ["@nowhere"]', "TST001", "uses @nowhere, which is not defined under [globs]"),
    ("skip_comments = 'yes'", "TST001", "'skip_comments' must be true or false"),
    ('message = ""', "TST001", "'message' must be a non-empty string"),
]


@pytest.mark.parametrize(("override", "rule_id", "problem"), BROKEN, ids=[b[2][:28] for b in BROKEN])
def test_a_broken_rule_names_its_id_and_field(tmp_path, override, rule_id, problem):
    """Each mistake in a rule is reported with the file, the rule id and the offending field."""
    key = override.split(" = ")[0]
    lines = [line for line in GOOD_RULE.splitlines() if not line.startswith(f"{key} = ")]
    path = write(tmp_path, "\n".join([*lines, override]))
    with pytest.raises(RulesFileInvalid) as caught:
        load_rules("custom", path)
    message = str(caught.value)
    assert message.startswith(f"{path}: rule {rule_id}: field ")
    assert problem in message


def test_a_rule_without_an_id_is_named_by_its_position(tmp_path):
    """A rule missing its id is pointed at by number, since it has no name yet."""
    text = GOOD_RULE + GOOD_RULE.replace('id = "TST001"\n', "")
    with pytest.raises(RulesFileInvalid, match=r"rule #2: field 'id' is missing"):
        load_rules("custom", write(tmp_path, text))


def test_duplicate_ids_are_rejected(tmp_path):
    """Two rules may not share an id: findings would be ambiguous."""
    with pytest.raises(RulesFileInvalid, match=r"rule TST001: field 'id' is used twice"):
        load_rules("custom", write(tmp_path, GOOD_RULE + GOOD_RULE))


def test_file_scope_needs_paths_and_no_pattern(tmp_path):
    """A "this file changed" rule must say which files, and has no line pattern."""
    text = GOOD_RULE.replace("severity", 'scope = "file"\nseverity')
    with pytest.raises(RulesFileInvalid, match=r"TST001: field 'pattern' is required, except with scope"):
        load_rules("custom", write(tmp_path, text))


def test_requirement_needs_exactly_one_way_to_be_met(tmp_path):
    """A requirement is met by a changed path or by the description, never both or neither."""
    text = """
[[requirement]]
id = "TST010"
title = "Ticket"
severity = "medium"
labels = ["release"]
message = "Link the ticket in the description."
"""
    with pytest.raises(RulesFileInvalid, match=r"requirement TST010: field 'changed_path' or 'description'"):
        load_rules("custom", write(tmp_path, text))


def test_invalid_toml_says_so(tmp_path):
    """A syntax error is reported as such, with the file name."""
    with pytest.raises(RulesFileInvalid, match=r"custom.toml: not valid TOML"):
        load_rules("custom", write(tmp_path, "[[rule]\nid = 1"))


def test_an_empty_rules_file_is_an_error(tmp_path):
    """A file with no rules would approve everything silently, so it is refused."""
    with pytest.raises(RulesFileInvalid, match=r"no \[\[rule\]\] or \[\[requirement\]\] tables"):
        load_rules("custom", write(tmp_path, "# nothing yet\n"))


def test_redact_removes_everything_secret_rules_match():
    """Secret values are replaced by [REDACTED]; ordinary text is left alone."""
    rules = load_rules("security")
    text = "The key AKIAZ3MEXQ4J7HNR2PLC and token ghp_4fR8sT2vW9xY1zA3bC5dE7gH0jK6mN8pQ2rS are in config.py:3."
    assert rules.redact(text) == "The key [REDACTED] and token [REDACTED] are in config.py:3."


def test_a_rules_patterns_are_searched_as_one_alternation_with_the_same_answers():
    """`combine` joins a rule's patterns (flags kept per pattern); the packaged rules find on every
    corpus-like line what their patterns apart find, and rules with back-references stay apart."""
    import regex

    from services.review.checks import combine

    joined = combine((regex.compile("(?i)secret"), regex.compile("TOKEN")))
    assert joined.search("My SECRET") and joined.search("a TOKEN") and not joined.search("a token")
    assert combine((regex.compile(r"(a)\1"), regex.compile("b"))) is None
    for rule in load_rules("security").rules:
        if rule.combined is None:
            continue
        for line in ["x = requests.get(url, verify=False)", "chmod 777 /srv", 'KEY = "AKIAQ4TR7WXZ2LMN5PV6"', "y = 1"]:
            apart = any(pattern.search(line) for pattern in rule.patterns)
            assert bool(rule.combined.search(line)) is apart, (rule.id, line)


def test_near_and_targets_are_validated(tmp_path):
    """`targets`, `near_in` and `near_lines` refuse values they do not know, naming the field."""
    for override, problem in [
        ('targets = ["diff", "readme"]', "'targets' names 'readme'"),
        ('near_in = "everywhere"', "'near_in' is 'everywhere'"),
        ("near_lines = 500", "'near_lines' must be a whole number from 0 to 50"),
        ('family = "Secrets!"', "'family' must be a lower-case name"),
    ]:
        with pytest.raises(RulesFileInvalid, match=problem):
            load_rules("custom", write(tmp_path, GOOD_RULE + override + "\n"))


def test_an_included_file_adds_its_rules(tmp_path):
    """`include = ["other"]` adds the rules of other.toml from the same folder."""
    (tmp_path / "other.toml").write_text(GOOD_RULE.replace("TST001", "TST009"), encoding="utf-8")
    rules = load_rules("custom", write(tmp_path, 'include = ["other"]\n' + GOOD_RULE))
    assert [rule.id for rule in rules.rules] == ["TST001", "TST009"]
