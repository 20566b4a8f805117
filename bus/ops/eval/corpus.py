"""The labelled corpus: one JSON file per release, `{"id", "expected", "release"}`.

`release` is exactly what a producer publishes on `release.proposed` (`mesh publish
release.proposed` takes it as it is, `jq .release FILE`); `expected` is what a careful reviewer
concludes about it — kept beside the release, never inside it, so no reviewer sees its label:

    "expected": {
      "verdict": "reject",                   approve | needs_human | reject (both reviewers together)
      "reason": "…",                         why, in a sentence
      "families": ["secrets"],               the problems it holds (none for a clean release)
      "tags": ["lang:python", "evasion:split-concat", "injection", "near-miss:secrets"]
    }
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bus.errors import MeshError
from contracts.releases import ReleaseProposed
from contracts.reviews import Verdict
from contracts.validation import describe_errors


class CorpusInvalid(MeshError):
    """A corpus file that cannot be used; the message names the file and what to fix."""


class ExpectedVerdict(BaseModel):
    """A release's label."""

    model_config = ConfigDict(extra="forbid")

    verdict: Verdict = Field(description="What both reviewers together should conclude.")
    reason: str = Field(min_length=1, description="Why, in a sentence.")
    families: list[str] = Field(default_factory=list, description="The problems the release holds.")
    tags: list[str] = Field(default_factory=list, description="lang:…, evasion:…, near-miss:…, injection.")


class CaseFile(BaseModel):
    """One corpus file."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    expected: ExpectedVerdict
    release: ReleaseProposed


@dataclass(frozen=True)
class Case:
    """A labelled release."""

    id: str
    expected: ExpectedVerdict
    release: ReleaseProposed

    @property
    def risky(self) -> bool:
        """Whether a careful reviewer would stop it (reject, or ask a human)."""
        return self.expected.verdict is not Verdict.APPROVE

    @property
    def injection(self) -> bool:
        """Whether its text tries to instruct the reviewing model."""
        return "injection" in self.expected.tags


def packaged_corpus() -> Path:
    """The corpus that ships with the reviewers (services/review/corpus/)."""
    return Path(str(resources.files("services.review").joinpath("corpus")))


def load_corpus(folder: Path | None = None) -> list[Case]:
    """Every case under `folder` (default: the packaged corpus), sorted by id.

    Raises `CorpusInvalid` naming the file when one is not valid JSON, not the shape above, or
    inconsistent (a clean release with families, a risky one without, an id that is not its path).
    """
    root = folder or packaged_corpus()
    if not root.is_dir():
        raise CorpusInvalid(f"no corpus folder at {root}; pass --corpus with a folder of case files")
    cases = [_read(path, root) for path in sorted(root.rglob("*.json"))]
    if not cases:
        raise CorpusInvalid(f"no case files (*.json) under {root}")
    return sorted(cases, key=lambda case: case.id)


def _read(path: Path, root: Path) -> Case:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        parsed = CaseFile.model_validate(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorpusInvalid(f"{path}: not UTF-8 JSON ({exc}); fix the file") from None
    except ValidationError as exc:
        raise CorpusInvalid(f"{path}: {'; '.join(describe_errors(exc, whole='case'))}") from None
    expected = parsed.expected
    if parsed.id != path.relative_to(root).with_suffix("").as_posix():
        raise CorpusInvalid(f"{path}: id {parsed.id!r} should be its path under the corpus, without .json")
    if (expected.verdict is Verdict.APPROVE) == bool(expected.families):
        raise CorpusInvalid(f"{path}: a clean release has no families, a risky one at least one; fix 'families'")
    return Case(parsed.id, expected, parsed.release)
