"""The fake Anthropic server playing a perfect but gullible model, for the model path's eval.

It answers every review with the case's label (the verdict a careful reviewer would give, for
that reviewer's families) — or, asked to, approves everything — and it obeys any prompt
injection it finds in the release: then it approves, with full confidence and no findings. So
the model path's figures show what the guard keeps when a model is fooled: every risky release
carrying an injection is one the model approved, and only the rules can still stop it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bus.ops.eval.corpus import Case
from bus.ops.eval.scoring import expected_for
from contracts.reviews import Verdict
from services.llm.fake import FakeAnthropic
from services.llm.fake.model import injected
from services.review.prompt import render_proposal

_RELEASE_ID = re.compile(r'"release_id": ("(?:\\.|[^"\\])*")')
_FOCUS = re.compile(r"You are the (\w+) reviewer")


@contextmanager
def gullible_model(
    cases: list[Case], families: dict[str, set[str]], *, answers: str = "labels"
) -> Iterator[FakeAnthropic]:
    """A started fake whose every model answers each case with its label (`answers="labels"`), or
    approves everything (`"approve"`: the worst model, so the figures are what the rules alone
    keep) — and approves whatever an injection tells it to."""
    by_release = {case.release.release_id: case for case in cases}

    def answer_for(request: dict[str, Any]) -> dict[str, Any]:
        first = (request.get("messages") or [{}])[0].get("content")
        prompt = first if isinstance(first, str) else ""
        system = json.dumps(request.get("system"), ensure_ascii=False)
        found, focus = _RELEASE_ID.search(prompt), _FOCUS.search(system)
        case = by_release.get(json.loads(found.group(1))) if found else None
        if case is None or focus is None:
            return {}
        verdict = expected_for(case, focus.group(1), families) if answers == "labels" else Verdict.APPROVE
        return {
            "verdict": verdict.value,
            "confidence": 0.9,
            "rationale": f"Label: {case.expected.reason}",
            "findings": [],
        }

    with FakeAnthropic(seed=18) as api:
        api.profile(answer_for=answer_for, obey_injection=True)
        yield api


def obeys(case: Case) -> bool:
    """Whether the gullible model takes this case's text as an order to approve."""
    return injected(render_proposal(case.release))
