"""contracts/validation.py: a validation error as `field.path: message` lines."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, Field, ValidationError

from contracts.validation import describe_errors


class Item(BaseModel):
    path: str = Field(min_length=1)


class Doc(BaseModel):
    name: str
    items: list[Item]


def invalid(data: object) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        Doc.model_validate(data)
    return caught.value


def test_each_problem_is_its_dotted_path_and_message():
    """One line per problem, list indexes included in the path."""
    assert describe_errors(invalid({"items": [{"path": ""}]})) == [
        "name: Field required",
        "items.0.path: String should have at least 1 character",
    ]


def test_a_problem_with_the_whole_input_is_named_by_the_caller():
    """An empty path reads `(message)` unless the caller names the whole input otherwise."""
    exc = invalid("not an object")
    assert describe_errors(exc) == ["(message): Input should be a valid dictionary or instance of Doc"]
    assert describe_errors(exc, whole="settings") == ["settings: Input should be a valid dictionary or instance of Doc"]


def test_limit_keeps_the_first_problems():
    """`limit` keeps the first problems only; None keeps them all."""
    exc = invalid({"items": [{"path": ""}, {"path": ""}, {"path": ""}]})
    assert len(describe_errors(exc)) == 4
    assert describe_errors(exc, limit=2) == [
        "name: Field required",
        "items.0.path: String should have at least 1 character",
    ]


def test_an_errors_list_with_leading_parts_skipped():
    """FastAPI's error list works too; `skip` drops its `query`/`body` part, and may leave nothing."""
    errors = [{"loc": ("query", "skill"), "msg": "bad"}, {"loc": ("body",), "msg": "missing"}]
    assert describe_errors(errors, whole="", skip=1) == ["skill: bad", ": missing"]
