"""The readings a secret can hide in: glued literals, escapes, base64."""

import base64

from services.review.decoding import base64_decoded, glued, unescaped, variants


def test_literals_joined_by_plus_side_by_side_or_in_a_list_are_glued():
    """`+`, implicit concatenation and list items all become one literal."""
    assert glued('k = "AKIA" + "ABCD"') == 'k = "AKIAABCD"'
    assert glued('k = "AKIA" "ABCD"') == 'k = "AKIAABCD"'
    assert glued('k = "".join(["sk_", "live"])') == 'k = .join(["sk_live"])'


def test_hex_unicode_and_octal_escapes_are_decoded():
    """`\\x41`, `\\u0041`, `\\u{41}` and `\\101` all read as `A`."""
    assert unescaped(r'"\x41\u0042\u{43}\104"') == '"ABCD"'


def test_base64_that_decodes_to_text_is_replaced_by_it():
    """A token that decodes to readable text is read as that text; one that decodes to bytes stays."""
    token = base64.b64encode(b"-----BEGIN PRIVATE KEY-----").decode()
    assert "BEGIN PRIVATE KEY" in base64_decoded(f"key: {token}")
    binary = base64.b64encode(bytes(range(200))).decode()
    assert base64_decoded(f"blob: {binary}") == f"blob: {binary}"


def test_a_plain_line_has_no_other_readings():
    """The common case costs nothing: no variant equals the line itself."""
    assert variants("total = price * quantity") == []


def test_readings_combine_gluing_and_decoding():
    """A base64 token split into literals is glued, then decoded."""
    token = base64.b64encode(b"ghp_0123456789abcdefghijklmnopqrstuvwxyz").decode()
    assert any("ghp_0123" in reading for reading in variants(f'x = "{token[:10]}" + "{token[10:]}"'))
