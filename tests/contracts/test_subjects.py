"""contracts/subjects.py: subject tokens for ids, and which stream stores which subject."""

from __future__ import annotations

import re

import pytest

from contracts.subjects import Subjects, subject_token

SAFE_TOKEN = re.compile(r"^[A-Za-z0-9_=-]+$")  # `=` marks a hashed token; valid in subjects and KV keys


@pytest.mark.parametrize("value", ["rel-42", "payments_api", "A1", "x" * 64])
def test_a_safe_id_stays_readable(value):
    """Ids made of letters, digits, `_` and `-` (up to 64 chars) are their own token."""
    assert subject_token(value) == value


@pytest.mark.parametrize(
    "value",
    ["rel.42", "rel 42", "rel*", "rel>", "a.b c*>", "", "x" * 65, "réaliser", "rel\t42"],
    ids=["dot", "space", "star", "gt", "all-of-them", "empty", "too-long", "non-ascii", "tab"],
)
def test_an_unsafe_id_becomes_one_safe_token(value):
    """Dots, spaces, wildcards and other characters never reach the subject; the token stays one token."""
    token = subject_token(value)
    assert SAFE_TOKEN.match(token), token
    assert not set(token) & set(". *>\t")
    assert len(token) <= 64
    assert subject_token(value) == token  # stable


def test_an_unsafe_token_keeps_a_readable_prefix():
    """The hashed token still starts with the id, unsafe characters replaced by `_`."""
    assert subject_token("rel.42 beta").startswith("rel_42_beta=")


def test_different_ids_never_share_a_token():
    """Ids that differ only in which unsafe character they hold get different tokens."""
    ids = ["rel.42", "rel 42", "rel*42", "rel>42", "rel_42", "rel-42", "rel..42", "rel.42.", "", "x" * 65, "x" * 66]
    tokens = [subject_token(value) for value in ids]
    assert len(set(tokens)) == len(ids)


def test_a_safe_id_that_looks_like_a_hashed_token_does_not_collide():
    """An id that happens to equal the token of another id still gets its own token."""
    hashed = subject_token("a.b")
    assert subject_token(hashed) != hashed


MESH = Subjects("mesh")
STORED = [
    (MESH.release_proposed, "MESH_EVENTS"),
    (MESH.events, "MESH_EVENTS"),
    (MESH.review_submitted("security"), "MESH_REVIEWS"),
    (MESH.reviews, "MESH_REVIEWS"),
    (MESH.round_decided("rel.42", "ab12"), "MESH_OUTCOMES"),
    (MESH.outcomes, "MESH_OUTCOMES"),
    (MESH.deadline_schedule("rel-42", "ab12"), "MESH_DEADLINES"),
    (MESH.deadline_fired("rel 42", "ab12"), "MESH_DEADLINES"),
    (MESH.deadlines_fired, "MESH_DEADLINES"),
    (MESH.dead_letter("security"), "MESH_DEADLETTER"),
    (MESH.dead_letters, "MESH_DEADLETTER"),
]


@pytest.mark.parametrize(("subject", "stream"), STORED, ids=[subject for subject, _ in STORED])
def test_stream_for_maps_each_subject_kind_to_its_stream(subject, stream):
    """Every subject the namespace builds is stored by the stream of its kind."""
    assert MESH.stream_for(subject) == stream


def test_the_named_streams_match_stream_for():
    """The stream properties name the same streams stream_for returns."""
    assert [
        MESH.events_stream,
        MESH.reviews_stream,
        MESH.outcomes_stream,
        MESH.deadlines_stream,
        MESH.dead_letter_stream,
    ] == [
        "MESH_EVENTS",
        "MESH_REVIEWS",
        "MESH_OUTCOMES",
        "MESH_DEADLINES",
        "MESH_DEADLETTER",
    ]


@pytest.mark.parametrize(
    "subject",
    [
        "other.events.release.proposed",
        "meshy.events.release.proposed",
        "mesh.unknown.thing",
        "mesh",
        "",
        "events.mesh.x",
    ],
    ids=["other-namespace", "namespace-prefix", "unknown-kind", "namespace-only", "empty", "kind-first"],
)
def test_stream_for_rejects_a_subject_outside_the_namespace(subject):
    """A subject of another namespace or an unknown kind raises ValueError naming subject and namespace."""
    with pytest.raises(ValueError, match="not stored by any stream of namespace 'mesh'"):
        MESH.stream_for(subject)


def test_namespaces_keep_their_names_apart():
    """Two namespaces on one server use different subjects, streams and buckets."""
    test = Subjects("test-7")
    assert test.release_proposed == "test-7.events.release.proposed"
    assert test.stream_for(test.release_proposed) == "TEST-7_EVENTS"
    assert test.rounds_bucket == "test-7_rounds"
    with pytest.raises(ValueError):
        test.stream_for(MESH.release_proposed)


@pytest.mark.parametrize("release_id", ["rel-42", "rel.42", "a.b c*>"])
def test_an_id_adds_exactly_one_token_to_a_subject(release_id):
    """Whatever the release id holds, per-revision subjects have a fixed number of tokens:
    the release, then the content digest."""
    digest = "3812ed07d3c8042d4676e44249798c26e7f850fbb3e62aa9325b5082d542347a"
    assert MESH.round_decided(release_id, digest).split(".")[:3] == ["mesh", "outcomes", "release"]
    assert MESH.round_decided(release_id, digest).split(".")[-1] == digest
    assert len(MESH.round_decided(release_id, digest).split(".")) == 5
    assert len(MESH.deadline_fired(release_id, digest).split(".")) == 5
    assert len(MESH.outcomes_of(release_id).split(".")) == 5
