"""The reviewers' brain: turns a `ReleaseProposed` into an `Assessment`.

`make_brain` walks the agent's model chain (through the process's one LLM client,
`services.llm`) when an API key is set, and is the offline rules reviewer otherwise; the rules
also end every chain and guard every model answer.
"""

from services.review.assessment import Assessment, Brain
from services.review.brain import ChainBrain, make_brain
from services.review.offline import OfflineReviewer
from services.review.rules import RuleSet, RulesFileInvalid, load_rules

__all__ = [
    "Assessment",
    "Brain",
    "ChainBrain",
    "OfflineReviewer",
    "RuleSet",
    "RulesFileInvalid",
    "load_rules",
    "make_brain",
]
