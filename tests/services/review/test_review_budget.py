"""A reviewer cannot be frozen by its input: rules run in linear time, off the event loop, within
a budget, and a review that runs out of it answers needs_human — never approve."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from pathlib import Path

import pytest

from contracts.releases import Change, ReleaseProposed
from contracts.reviews import Verdict
from services.review.offline import INCOMPLETE, OfflineReviewer
from services.review.rules import load_rules
from tests.e2e.support import sample

SLOW_RULES = """
[[rule]]
id = "TST001"
title = "A catastrophically backtracking rule"
severity = "low"
pattern = '(?:a|aa)+c'
message = "Stands for any rule some input makes slow; nothing in a real rules file should look like this."
"""
SECRET_THEN_SLOW = (
    """
[[rule]]
id = "TST002"
title = "Planted key"
severity = "critical"
pattern = 'AKIA[A-Z2-7]{16}'
message = "A key is committed; this rule runs first and finds it before the slow one stalls."
"""
    + SLOW_RULES
)
STALLING_LINE = "a" * 60 + "b"  # TST001 needs far longer than any budget on this


def minified_js(size: int, seed: int = 7) -> str:
    """One line of bundler output: short names, string concatenation, SQL-ish and key-ish words."""
    rng = random.Random(seed)
    name = lambda: "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(1, 3)))  # noqa: E731 - a one-line generator reads best inline
    parts = [
        lambda: f'var {name()}=function({name()},{name()}){{return {name()}.eval({name()})+"select "+{name()}}};',
        lambda: f'{name()}.token="{name()}"+{name()}+"-{rng.randint(0, 9)}";',
        lambda: f"if({name()}.mode&&{name()}.password!=={name()}){{{name()}.log.info({name()}.email)}}",
        lambda: f"{name()}=[{','.join(str(rng.randint(0, 999)) for _ in range(8))}];",
        lambda: f"{name()}.ttl={name()}.retention||{rng.randint(1, 99)};",
        lambda: f'{name()}("curl "+{name()}+" os.system(" + {name()});',
    ]
    out: list[str] = []
    while sum(map(len, out)) < size:
        out.append(rng.choice(parts)())
    return "".join(out)[:size]


# Lines each of which took the rules on main quadratic (or worse) time in their length.
ADVERSARIAL = {
    "dashes": "-" * 32_000,  # SEC007, SEC008: every `-` restarted a lazy scan to the end
    "ttl-chain": "ttl." * 8_000,  # CMP004: cubic
    "mode-numbers": "mode" + " 1" * 16_000,  # SEC015: an unanchored `(?=.*X)`
    "print-calls": "print(" * 5_333,  # CMP001: `log_call.*pii` from every call
    "eval-calls": "eval(" * 6_400,  # SEC013, SEC014: every call read all the others' arguments
    "os-system": "os.system(" * 3_200,  # SEC011
    "curl": "curl " * 6_400,  # SEC010
    "yaml-load": "yaml.load(x) " * 2_461,  # SEC018
    "sk-prefixes": "sk-" * 10_666,  # SEC003
    "select-no-from": '"' + "select " * 4_571,  # SEC017
    "f-select": 'f"' + "select a from " * 2_285,  # SEC017
    "aws-names": "_aws_secret_key" * 2_133,  # SEC002
    "dotted-words": "a.b-" * 8_000,  # SEC007
    "log-word": "log" * 10_666 + ".info(x)",  # CMP001 inside one long word
    "run-word": "delete run" + "run" * 10_000,  # CMP005
    "purge-comment": "# " + "purge" * 6_400,  # CMP005
    "placeholders": 'password="abcd1234" ' + "'<" * 16_000,  # SEC008's ignore list
    # issue 18's rules and readings: statements, decoding, near, the shared injection rules
    "config-value": "password: " + "a1!" * 10_666,  # SEC024's value check
    "glued-literals": '"a" + ' * 5_333,  # decoding: concatenated literals
    "listed-literals": '["a", ' + '"b", ' * 6_400,  # decoding: list items
    "base64-run": "A" * 32_000,  # decoding: one over-long base64 run
    "hex-escapes": '"' + "\\x41" * 8_000 + '"',  # decoding: escapes
    "quotes": "\"'" * 16_000,  # statements: strings opening and closing
    "open-brackets": "(" * 32_000,  # statements: depth
    "ai-reviewer": "AI reviewer " * 2_666,  # INJ001
    "ignore-previous": "ignore previous instructions " * 1_100,  # INJ001
    "vendor-email": "analytics email " * 2_000,  # CMP012
    "len-calls": "len(" * 8_000 + "email",  # pii_name's lookbehind
    "jwt-decode": "jwt.decode(" * 2_909,  # SEC031
    "sql-concat": "'a' || b " * 3_555,  # SEC028
    "exec-command": 'exec.Command("sh", "-c", ' * 1_280,  # SEC011
}
# Quiet, each line takes well under a second; on main the quadratic rules took minutes. The bound
# sits between the two with room for a loaded 2-core machine, where a quiet 0.5 s becomes 2 s.
LIMIT_SECONDS = 10.0


def release(*lines: str, path: str = "web/static/app.min.js", labels: list[str] | None = None) -> ReleaseProposed:
    diff = "".join(f"+{line}\n" for line in lines)
    changes = [Change(path=path, diff=diff), Change(path="db/migrations/001_schema.sql", diff=diff)]
    return ReleaseProposed(release_id="rel-long", service="web", version="1.0", changes=changes, labels=labels or [])


def timed_review(name: str, proposal: ReleaseProposed) -> tuple[float, Verdict, list[str]]:
    reviewer = OfflineReviewer(load_rules(name), name=name)  # no budget: the rules alone must be fast
    started = time.perf_counter()
    assessment = reviewer.review(proposal)
    return time.perf_counter() - started, assessment.verdict, [f.rule for f in assessment.findings]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", ["security", "compliance"])
def test_each_rule_set_reads_an_82_kb_minified_line_in_seconds_not_minutes(name):
    """An 82 KB minified-JS line (in a .js file and in a schema file) is read in seconds at most,
    with no budget to hide behind (main took minutes on such a line)."""
    seconds, _, rules = timed_review(name, release(minified_js(82_000)))
    assert seconds < LIMIT_SECONDS, f"{name} took {seconds:.2f} s"
    assert INCOMPLETE not in rules


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", ["security", "compliance"])
@pytest.mark.parametrize("line", list(ADVERSARIAL), ids=list(ADVERSARIAL))
def test_each_rule_set_reads_a_32_kb_adversarial_line_in_seconds_not_minutes(name, line):
    """Each ~32 KB line crafted against one of main's quadratic patterns is read in seconds at
    most (main: minutes) by every rule of both sets."""
    seconds, _, _ = timed_review(name, release(ADVERSARIAL[line], labels=["gdpr"]))
    assert seconds < LIMIT_SECONDS, f"{name} took {seconds:.2f} s on {line}"


def test_the_fixed_patterns_still_find_what_they_found():
    """The linear rewrites keep their findings: a key, a password, SQL by formatting, eval of input,
    an unsafe yaml load, curl -k, a retention change and PII in a log line still fire."""
    lines = [
        'client_secret = "s3cr3t-value-1234"',
        'db.password = "hunter2!"',
        'cursor.execute(f"SELECT name FROM users WHERE id = {user_id}")',
        "result = eval(request.args['expr'])",
        "cfg = yaml.load(stream)  # no Loader",
        "curl -s https://x.example -k",
        'os.system("rm -rf " + path)',
    ]
    security = OfflineReviewer(load_rules("security"), name="security").review(release(*lines, path="src/app.py"))
    assert {"SEC007", "SEC008", "SEC017", "SEC013", "SEC018", "SEC010", "SEC011"} <= {f.rule for f in security.findings}
    compliance = OfflineReviewer(load_rules("compliance"), name="compliance").review(
        release('logger.info("user %s", customer.email)', "retention_days = 30", path="src/app.py")
    )
    assert {"CMP001", "CMP004"} <= {f.rule for f in compliance.findings}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "slow.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_review_past_its_budget_answers_needs_human_with_a_finding_that_says_why(tmp_path):
    """A rule that stalls on a line is cut off at the budget: needs_human, never approve, with an
    REV001 finding naming the file and line it stopped at and the setting to change."""
    reviewer = OfflineReviewer(load_rules("slow", write(tmp_path, SLOW_RULES)), name="security", budget_seconds=0.5)
    started = time.perf_counter()
    assessment = reviewer.review(release("fine", STALLING_LINE))
    took = time.perf_counter() - started
    assert took < 5.0, f"cut off after {took:.1f} s"  # the budget is 0.5 s; the rule alone, for ever
    assert assessment.verdict is Verdict.NEEDS_HUMAN
    (finding,) = assessment.findings
    assert (finding.rule, finding.file, finding.line) == (INCOMPLETE, "web/static/app.min.js", 2)
    assert "MESH_REVIEW_BUDGET_SECONDS" in finding.message and "0.5 s" in finding.message
    assert "ran out of time" in assessment.rationale


def test_what_was_found_before_the_budget_ran_out_still_counts(tmp_path):
    """A key found before the rules stalled keeps the reject; the REV001 finding joins it."""
    rules = load_rules("slow", write(tmp_path, SECRET_THEN_SLOW))
    reviewer = OfflineReviewer(rules, name="security", budget_seconds=0.5)
    assessment = reviewer.review(release("key = AKIAABCDEFGHIJKLMNOP", STALLING_LINE))
    assert assessment.verdict is Verdict.REJECT
    assert {f.rule for f in assessment.findings} == {"TST002", INCOMPLETE}


def test_an_exhausted_budget_never_approves_a_clean_release():
    """With the budget gone before the first line (an injected clock), a clean release is not
    approved: needs_human with REV001."""
    ticking = itertools.count(0.0, 1.0).__next__  # every reading is a second later
    reviewer = OfflineReviewer(load_rules("security"), name="security", budget_seconds=0.5, clock=ticking)
    assessment = reviewer.review(sample("release_clean"))
    assert assessment.verdict is Verdict.NEEDS_HUMAN
    assert [f.rule for f in assessment.findings] == [INCOMPLETE]


async def while_ticking(work, *, every: float):
    """Await `work` while a ticker on the loop records the gaps between its ticks."""
    gaps: list[float] = []

    async def tick() -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(every)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    try:
        return await work, gaps
    finally:
        ticker.cancel()


async def test_the_event_loop_keeps_running_while_the_rules_work(tmp_path):
    """`assess` matches in a worker thread that lets go of the GIL: a ticker on the loop never
    waits more than a fraction of the budget while a review stalls for its whole budget."""
    reviewer = OfflineReviewer(load_rules("slow", write(tmp_path, SLOW_RULES)), name="security", budget_seconds=1.5)
    assessment, gaps = await while_ticking(reviewer.assess(release(STALLING_LINE)), every=0.02)
    assert assessment.verdict is Verdict.NEEDS_HUMAN
    # blocked, the loop would tick once or twice with a 1.5 s gap; the margins hold on a loaded
    # 2-core machine, where the ticker itself runs late
    assert len(gaps) >= 10 and max(gaps) < 0.75, f"{len(gaps)} ticks, the longest gap {max(gaps):.2f} s"


async def test_a_model_cannot_approve_what_the_rules_could_not_finish(api, brain_for):
    """The chain brain runs the rules off the loop within their budget; when they run out, a
    model's approve becomes needs_human, carrying the rules' REV001 finding."""
    brain = brain_for(llm_chain="claude-sonnet-4-6,offline")
    brain.offline = OfflineReviewer(
        load_rules("security"), name="security", budget_seconds=0.5, clock=itertools.count(0.0, 1.0).__next__
    )
    assessment = await brain.assess(sample("release_clean", release_id="rel-incomplete"))
    assert assessment.model == "claude-sonnet-4-6"
    assert assessment.verdict is Verdict.NEEDS_HUMAN
    assert INCOMPLETE in [f.rule for f in assessment.findings]
    assert "ran out of time" in assessment.rationale


async def test_a_large_release_under_the_packaged_rules_is_read_off_the_event_loop():
    """Past 16 KB of diff even the packaged rules read in the rules thread: a ticker on the loop
    keeps ticking while an 82 KB minified line is reviewed."""
    reviewer = OfflineReviewer(load_rules("security"), name="security", budget_seconds=5)
    _, gaps = await while_ticking(reviewer.assess(release(minified_js(82_000))), every=0.005)
    assert len(gaps) >= 3 and max(gaps) < 0.2
