"""contracts/deadletters.py: a dead letter keeps the original payload byte for byte."""

from __future__ import annotations

import pytest

from contracts.deadletters import DeadLetter

PAYLOADS = [
    (b'{"release_id": "rel-42"}', "utf-8"),
    ('{"title": "Caf\u00e9 \u2615"}'.encode(), "utf-8"),
    (b"", "utf-8"),
    (b"\xff\xfe\x00not utf-8", "base64"),
    (b"\xc3", "base64"),  # a truncated UTF-8 sequence
    (bytes(range(256)), "base64"),
]


def dead_letter(data: bytes) -> DeadLetter:
    payload, encoding = DeadLetter.wrap_payload(data)
    return DeadLetter(
        subject="mesh.events.release.proposed",
        payload=payload,
        payload_encoding=encoding,
        error="not valid JSON",
        error_type="invalid",
        service="coordinator",
    )


@pytest.mark.parametrize(
    ("data", "encoding"), PAYLOADS, ids=["json", "non-ascii-utf8", "empty", "binary", "truncated-utf8", "all-bytes"]
)
def test_wrap_payload_keeps_utf8_as_text_and_anything_else_as_base64(data, encoding):
    """UTF-8 payloads are stored as readable text, others as base64, and both come back exactly."""
    letter = dead_letter(data)
    assert letter.payload_encoding == encoding
    if encoding == "utf-8":
        assert letter.payload == data.decode("utf-8")
    assert letter.original_payload() == data


@pytest.mark.parametrize(
    ("data", "encoding"), PAYLOADS, ids=["json", "non-ascii-utf8", "empty", "binary", "truncated-utf8", "all-bytes"]
)
def test_the_original_payload_survives_a_json_round_trip_of_the_record(data, encoding):
    """A dead letter written as JSON and read back still yields the exact original bytes."""
    restored = DeadLetter.model_validate_json(dead_letter(data).model_dump_json())
    assert restored.original_payload() == data
