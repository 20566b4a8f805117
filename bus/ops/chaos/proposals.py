"""What a chaos run proposes, and what each proposal deserves.

A seeded mix: three in four releases are the clean sample; the rest are risky, each one of the
secret sample (an AWS key and a Stripe key), the clean sample with a freshly drawn AWS access
key id added (`AWS_ACCESS_KEY_ID = "AKIA…"`, a valid format that is not AWS's EXAMPLE key), and
a customer-facing release without a changelog entry (a question for a human). Release ids are
unique per run (`chaos-<seed>-<i>`), so outcomes are matched to proposals by release id alone.

What a proposal *deserves* is what the offline rules say of its content, combined by the
policy: the same rules the mesh's reviewers run in a chaos run (their model chain is pinned to
`offline`), computed here without a broker.
"""

from __future__ import annotations

import json
import random
import string
from collections.abc import Sequence
from importlib.resources import files

from contracts.outcomes import Outcome
from contracts.releases import ReleaseProposed
from coordinator.policy import Policy
from services.review.offline import OfflineReviewer
from services.review.rules import load_rules

REVIEWERS = ("security", "compliance")
KINDS = ("clean", "secret", "aws-key", "unlogged")  # what a proposal carries
RISKY_SHARE = 4  # one proposal in this many is risky
_KEY_ALPHABET = string.ascii_uppercase + "234567"


def _sample(name: str) -> dict:
    data = json.loads((files("contracts") / "samples" / f"{name}.json").read_text())
    data.pop("event_id", None)
    return data


def release(kind: str, release_id: str, rng: random.Random) -> ReleaseProposed:
    """One release of `kind` (see `KINDS`) under `release_id`; `rng` draws its planted key."""
    data = _sample("release_secret") if kind == "secret" else _sample("release_clean")
    if kind == "aws-key":
        key = "AKIA" + "".join(rng.choices(_KEY_ALPHABET, k=16))
        data["changes"].append(
            {
                "path": "src/settings.py",
                "diff": f'@@ -0,0 +1,2 @@\n+AWS_ACCESS_KEY_ID = "{key}"\n+AWS_REGION = "eu-west-1"\n',
            }
        )
    elif kind == "unlogged":
        data["labels"] = [*data["labels"], "customer-facing"]
        data["changes"] = [c for c in data["changes"] if c["path"] != "CHANGELOG.md"]
    elif kind not in ("clean", "secret"):
        raise ValueError(f"unknown proposal kind {kind!r}; choose one of {', '.join(KINDS)}")
    data["release_id"] = release_id
    return ReleaseProposed.model_validate(data)


def proposals(count: int, *, seed: int) -> list[ReleaseProposed]:
    """`count` distinct releases, one in `RISKY_SHARE` (rounded up) risky, at seeded places."""
    rng = random.Random(f"chaos-proposals-{seed}")
    risky = set(rng.sample(range(count), -(-count // RISKY_SHARE)))
    made = []
    for i in range(count):
        kind = rng.choice(KINDS[1:]) if i in risky else "clean"
        made.append(release(kind, f"chaos-{seed}-{i:05d}", rng))
    return made


def deserved(made: Sequence[ReleaseProposed], *, policy: Policy) -> dict[str, Outcome]:
    """Release id → the outcome its content deserves: the offline rules of every reviewer,
    combined by `policy`, as if every reviewer answered in time."""
    brains = [OfflineReviewer(load_rules(name), name=name) for name in REVIEWERS]
    return {p.release_id: policy.apply([brain.review(p).verdict for brain in brains]) for p in made}
