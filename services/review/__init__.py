"""The reviewers' brain: turns a `ReleaseProposed` into an `Assessment`.

`make_brain` picks the Anthropic reviewer when an API key is set and the offline rules
reviewer otherwise; the rules also back the model up when a call fails.
"""

from services.review.assessment import Assessment, Brain
from services.review.brain import make_brain
from services.review.offline import OfflineReviewer
from services.review.rules import RuleSet, RulesFileInvalid, load_rules

__all__ = ["Assessment", "Brain", "OfflineReviewer", "RuleSet", "RulesFileInvalid", "load_rules", "make_brain"]
