"""How a validation error reads to a person: one `field.path: message` line per problem.

    try:
        ReleaseProposed.model_validate_json(text)
    except ValidationError as exc:
        print("; ".join(describe_errors(exc, whole="(document)")))
        # release_id: Field required; changes.0.path: String should have at least 1 character

The CLI, the runtime's dead letters, the registry's 400s and the LLM layer's repair prompts all
word their problems this way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError


def describe_errors(
    errors: ValidationError | Iterable[Mapping[str, Any]],
    *,
    whole: str = "(message)",
    limit: int | None = None,
    skip: int = 0,
) -> list[str]:
    """`field.path: message` for each problem (the first `limit` of them, when given).

    `errors` is a pydantic `ValidationError` or its `errors()` list (FastAPI's
    `RequestValidationError.errors()`, say). `whole` names the place when the problem is with
    the input as a whole (an empty path); `skip` drops that many leading path parts, such as
    FastAPI's `query` or `body`.
    """
    found = errors.errors(include_url=False) if isinstance(errors, ValidationError) else list(errors)
    lines = []
    for error in found[:limit]:
        where = ".".join(str(part) for part in error["loc"][skip:]) or whole
        lines.append(f"{where}: {error['msg']}")
    return lines
