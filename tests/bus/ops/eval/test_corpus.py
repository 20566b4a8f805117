"""The labelled corpus: big enough, balanced, covering the languages, families and evasions issue
18 names, and every file a valid release with a consistent label."""

import json
from collections import Counter

import pytest

from bus.ops.eval.corpus import CorpusInvalid, load_corpus
from bus.ops.eval.judging import rule_sets

LANGUAGES = {
    "python", "javascript", "typescript", "go", "java", "sql", "terraform", "kubernetes", "dockerfile",
    "github-actions", "yaml", "dotenv", "json",
}  # fmt: skip
EVASIONS = {
    "split-concat", "split-join", "base64", "escapes", "docs", "examples", "fixtures", "unquoted", "line-break",
    "no-markers", "description", "path", "moved-to-docs", "multi-line", "label-spelling",
}  # fmt: skip
CLEAN_ONCE_BLOCKED = {
    "permissions/sticky-tmp-directory",
    "personal-data/count-of-emails",
    "hashing/argon2-replaces-md5",
    "secrets/vault-references",
    "deserialization/yaml-safeloader-split-call",
    "licensing/license-year-bump",
}


@pytest.fixture(scope="module")
def cases():
    return load_corpus()


def tags(cases, prefix: str) -> Counter:
    return Counter(tag.removeprefix(prefix) for case in cases for tag in case.expected.tags if tag.startswith(prefix))


def test_the_corpus_has_enough_releases_risky_and_clean_in_similar_numbers(cases):
    """At least 150 releases, neither kind under 40 % of them."""
    risky = sum(case.risky for case in cases)
    assert len(cases) >= 150
    assert 0.4 <= risky / len(cases) <= 0.6


def test_releases_are_multi_file_or_carry_context(cases):
    """Releases change several files (code with its changelog, tests, config), and every diff but
    the deliberately unmarked ones has hunks."""
    multi = sum(len(case.release.changes) > 1 for case in cases)
    assert multi >= 0.8 * len(cases)
    raw = [
        c.id
        for c in cases
        for ch in c.release.changes
        if "@@" not in ch.diff and "no-markers" not in str(c.expected.tags)
    ]
    assert raw == []


def test_every_language_issue_18_lists_is_covered_both_ways(cases):
    """Each language has risky and clean releases."""
    risky = tags([c for c in cases if c.risky], "lang:")
    clean = tags([c for c in cases if not c.risky], "lang:")
    assert {lang for lang in LANGUAGES if not risky[lang] or not clean[lang]} == set()


def test_every_evasion_issue_18_lists_has_a_case(cases):
    """Split keys, encodings, odd line breaks, docs/examples/fixtures, unmarked diffs, secrets in
    descriptions and paths, auth moved into Markdown, multi-line SQL, label spellings."""
    assert EVASIONS - set(tags(cases, "evasion:")) == set()


def test_the_clean_changes_issue_18_saw_blocked_are_labelled_clean(cases):
    """The six clean changes from the issue are in the corpus, labelled approve."""
    clean = {case.id for case in cases if not case.risky}
    assert clean >= CLEAN_ONCE_BLOCKED


def test_prompt_injections_are_in_descriptions_and_diffs(cases):
    """At least eight releases carry an injection, some in the description, some in the diff."""
    injected = [case for case in cases if case.injection]
    assert len(injected) >= 8
    assert any("nstructions" in case.release.description for case in injected)
    assert any("nstructions" in change.diff for case in injected for change in case.release.changes)


def test_corpus_families_and_rule_families_are_the_same_set(cases):
    """Every labelled family is one a rule looks for, and every family of the rules has a risky
    release and a clean near-miss."""
    rules = rule_sets()
    ruled = set().union(*(ruleset.families for ruleset in rules.values()))
    labelled = {family for case in cases for family in case.expected.families}
    near_misses = set(tags(cases, "near-miss:"))
    assert labelled == ruled
    assert ruled - near_misses <= {"erasure", "sign-off"} - near_misses or ruled - near_misses == set()


def test_a_release_never_carries_its_own_label(cases):
    """The label is beside the release, never inside it: no reviewer can read it."""
    for case in cases:
        assert "expected" not in case.release.model_dump(), case.id


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("a/x.json", "{not json", "not UTF-8 JSON"),
        ("a/x.json", json.dumps({"id": "a/x", "expected": {"verdict": "approve", "reason": "r"}}), "release"),
        ("a/x.json", json.dumps({"id": "b/x", "expected": {"verdict": "approve", "reason": "r"}, "release": {
            "release_id": "r", "service": "s", "version": "1"}}), "should be its path"),
        ("a/x.json", json.dumps({"id": "a/x", "expected": {"verdict": "approve", "reason": "r", "families": ["tls"]},
            "release": {"release_id": "r", "service": "s", "version": "1"}}), "clean release has no families"),
    ],
)  # fmt: skip
def test_a_broken_case_file_is_named_with_what_to_fix(tmp_path, name, text, problem):
    """Invalid JSON, a missing release, a wrong id or an inconsistent label fail with the file's name."""
    path = tmp_path / name
    path.parent.mkdir(parents=True)
    path.write_text(text)
    with pytest.raises(CorpusInvalid, match=problem) as caught:
        load_corpus(tmp_path)
    assert str(path) in str(caught.value)
