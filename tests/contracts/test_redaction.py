"""Generic redaction: secret values and known key formats go, key names stay, in linear time."""

import time

import pytest

from contracts.redaction import REDACTED, is_secret_key, redact, redact_value

AKIA = "AKIAZ3MEXQ4J7HNR2PLC"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('password = "hunter2"', 'password = "[REDACTED]"'),
        ("PASSWORD: hunter2", "PASSWORD: [REDACTED]"),
        ('{"db_password": "x", "user": "app"}', '{"db_password": "[REDACTED]", "user": "app"}'),
        ("--password=x --verbose", "--password=[REDACTED] --verbose"),
        ("mysql --password hunter2 -u app", "mysql --password [REDACTED] -u app"),
        ("passwd=abc&user=me", "passwd=[REDACTED]&user=me"),
        ("SECRET_KEY='django-insecure-123'", "SECRET_KEY='[REDACTED]'"),
        ("token: abc123", "token: [REDACTED]"),
        ("api_key => 'k-123'", "api_key => '[REDACTED]'"),
        ("client_secret := s3cr3t", "client_secret := [REDACTED]"),
        ("DB_PASSPHRASE=correct-horse", "DB_PASSPHRASE=[REDACTED]"),
        ('password = "correct horse battery staple"', 'password = "[REDACTED]"'),
        ('password = "' + "k" * 300 + '"', 'password = "[REDACTED]"'),
        ('aws_secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzzzzKEY"', 'aws_secret_access_key = "[REDACTED]"'),
        ("Authorization: Bearer abcdefghijklmnopqrstu", "Authorization: Bearer [REDACTED]"),
        ("curl -H 'Authorization: Basic dXNlcjpwYXNz'", "curl -H 'Authorization: Basic [REDACTED]'"),
        ("postgres://app:s3cret@db:5432/app", "postgres://app:[REDACTED]@db:5432/app"),
        ("nats://mesh:hunter2@127.0.0.1:4222", "nats://mesh:[REDACTED]@127.0.0.1:4222"),
    ],
)
def test_an_assignments_value_is_redacted_and_its_key_kept(text, expected):
    """Password/secret/token-like assignments, quoted or not, lose their value but keep their key."""
    assert redact(text) == expected


@pytest.mark.parametrize(
    "secret",
    [
        AKIA,
        "ASIAY34FZKBOKMUTVV7A",
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        "rk_live_51H8abcdEFGHijklMNOP",
        "sk-ant-api03-Xk2mQ9vR4tY7wZ1aB3cD5eF7gH9iJ0kL",
        "sk-proj-4bT9kQ2mX7vR1yZ8wA3cD6eF0gH5iJ",
        "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnop",
        "xoxb-2048-1024-abcdefABCDEF",
        "AIzaSyD4x9Qk2Lm8Rt5Vw3Yz7Ab1Cd6Ef0Gh2Jk",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\nProc-Type: 4,ENCRYPTED\nabc=\n-----END RSA PRIVATE KEY-----",
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA",  # cut off: redacted to the end
    ],
)
def test_known_key_formats_are_redacted_anywhere(secret):
    """A known credential format is redacted wherever it appears in prose."""
    out = redact(f"The model said: {secret} (see config.py:3).")
    assert secret not in out and secret.split("\n")[-1] not in out
    assert out.startswith(f"The model said: {REDACTED}")


@pytest.mark.parametrize(
    "text",
    [
        "The password is weak and the token expired.",
        "max_tokens=1024 input_tokens: 12",
        "if password == expected:",
        "Rotate the key in IAM, then load it from a secrets manager.",
        "https://git@github.com/org/repo and https://example.com/a:b",
        "AKIAIOSFODNN7EXAMPLEXYZ is too long to be a key id",
        "sk-learn is a library",
        "",
    ],
)
def test_ordinary_text_is_left_alone(text):
    """Prose, counts, comparisons and URLs without a password are not redacted."""
    assert redact(text) == text


def test_redaction_is_idempotent():
    """Redacting twice changes nothing more: `[REDACTED]` is not itself a secret to redact."""
    once = redact(f'password = "hunter2" key={AKIA} nats://u:p@h')
    assert redact(once) == once


def test_redact_value_walks_structures_and_blanks_secret_keys():
    """Strings in dicts, lists and tuples are redacted; values under a secret-looking key go whole."""
    value = {
        "event": f"loaded {AKIA}",
        "password": "hunter2",
        "headers": {"Authorization": "Basic dXNlcjpwYXNz", "Nats-Msg-Id": "m-1"},
        "notes": ["token=abc", ("ok", 3)],
        "max_tokens": 1024,
        "input_tokens": "12",
    }
    assert redact_value(value) == {
        "event": f"loaded {REDACTED}",
        "password": REDACTED,
        "headers": {"Authorization": REDACTED, "Nats-Msg-Id": "m-1"},
        "notes": [f"token={REDACTED}", ("ok", 3)],
        "max_tokens": 1024,
        "input_tokens": "12",
    }
    assert [is_secret_key(k) for k in ("api_key", "X-Api-Key", "Cookie", "tokens", "token_count", "trace")] == [
        True,
        True,
        True,
        False,
        False,
        False,
    ]


ADVERSARIAL = {
    "plain": "a" * 1_000_000,
    "keywords": "password" * 125_000,
    "open quotes": 'password="' * 100_000,
    "assignments without values": "token:" * 160_000,
    "sk prefixes": "sk-" * 330_000,
    "jwt heads": "eyJ-" * 250_000,
    "jwt dots": "eyJa.x." * 140_000,
    "pem headers": "-----BEGIN PRIVATE KEY-----" * 37_000,
    "url schemes": "a://x:" * 160_000,
    "flags": "--a-" * 250_000,
    "authorization": "Authorization: " * 60_000,
    "bearer": "bearer " * 140_000,
    "spaces after a key": "password" + " " * 1_000_000,
    "dashes": "-" * 1_000_000,
    "minified js": 'var a={password:"x",b:"sk-1",c:"http://u:p@h"};' * 20_000,
}


@pytest.mark.parametrize("name", ADVERSARIAL)
def test_a_one_megabyte_line_is_redacted_in_linear_time(name):
    """No input makes redaction super-linear: a ~1 MB adversarial line takes a fraction of a second
    quiet, a quadratic pattern would take hours; 5 s holds on a loaded 2-core machine."""
    text = ADVERSARIAL[name]
    started = time.perf_counter()
    redact(text)
    took = time.perf_counter() - started
    assert took < 5.0, f"{name}: {took:.2f} s"
