"""Why one model could not give an answer; the chain reads these and moves to its next step.

    ModelUnavailable             this model, for this review, gave no usable answer
    ├── CallSkipped              no request was sent (the step is `skipped`)
    │   ├── CircuitOpen          the model failed too often lately; its breaker is open
    │   ├── BudgetExhausted      the round's token or USD budget would be overspent
    │   └── NoTimeLeft           the call could not end before the round's deadline
    └── CallFailed               requests were sent, none gave a usable answer (`failed`)
        ├── ModelError           an API error or timeout that retries did not cure
        └── BadAnswer            no valid tool call, even after the one repair attempt

    DeadlineReached              (a TimeoutError, inside the client) the round's deadline cut a call
                                 short: reported as a ModelError, never retried, and not the
                                 model's fault, so its circuit breaker does not count it
    LLMConfigError               the LLM settings cannot be used (a ValueError; names the field)

`reason` is one sentence for a review's `attempts`: what happened, not a stack trace.
"""

from __future__ import annotations


class ModelUnavailable(Exception):
    """This model gave no usable answer for this review."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CallSkipped(ModelUnavailable):
    """The call was not made at all."""


class CircuitOpen(CallSkipped):
    """The model's circuit breaker is open."""


class BudgetExhausted(CallSkipped):
    """The round's budget does not cover another call."""


class NoTimeLeft(CallSkipped):
    """Too little time is left before the round's deadline for another call."""


class CallFailed(ModelUnavailable):
    """Requests were sent and none gave a usable answer."""


class ModelError(CallFailed):
    """The API kept failing (HTTP error, overload, timeout, connection) through the retries."""


class BadAnswer(CallFailed):
    """The model did not call the tool with valid input, even when asked once more."""


class LLMConfigError(ValueError):
    """An LLM setting that cannot be used; the message names the setting and the fix."""


class DeadlineReached(TimeoutError):
    """No answer came before the round's deadline, which cut the call short."""
