"""The wire: every message the mesh sends or accepts, and the subjects it travels on.

Import the models from here; each lives in a module named for what it describes.
"""

from contracts.deadletters import DeadLetter
from contracts.deadlines import RoundDeadline
from contracts.envelope import Envelope
from contracts.outcomes import Outcome, RoundDecided
from contracts.releases import Change, ReleaseProposed
from contracts.reviews import AttemptStatus, Finding, ModelAttempt, ReviewSubmitted, Severity, TokenUsage, Verdict
from contracts.subjects import Subjects

__all__ = [
    "AttemptStatus",
    "Change",
    "DeadLetter",
    "Envelope",
    "Finding",
    "ModelAttempt",
    "Outcome",
    "ReleaseProposed",
    "ReviewSubmitted",
    "RoundDeadline",
    "RoundDecided",
    "Severity",
    "Subjects",
    "TokenUsage",
    "Verdict",
]
