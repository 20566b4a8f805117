"""Generic redaction: secrets never reach a stream, a bucket or a log line.

`redact(text)` replaces the *value* of a password/secret/token-like assignment and every known
credential format with `[REDACTED]`, and keeps the key name so a person can still see what was
there:

    password = "hunter2"                  ->  password = "[REDACTED]"
    "db_password": "x"                    ->  "db_password": "[REDACTED]"
    --token=abc123                        ->  --token=[REDACTED]
    postgres://app:s3cret@db:5432/app     ->  postgres://app:[REDACTED]@db:5432/app
    AKIAIOSFODNN7ABCDEFG                  ->  [REDACTED]

Linear time on any input: Python's `re` backtracks, so every pattern here either starts with a
fixed literal and scans a bounded or non-overlapping stretch after it, or starts with a
lookbehind that only lets it begin where the run it scans begins. A 1 MB line takes milliseconds,
never the seconds a nested quantifier would (tests/contracts/test_redaction.py holds the
adversarial inputs). Keep that property when adding a pattern.

No project imports: contracts, the bus, services and the log processor all use it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

REDACTED = "[REDACTED]"

# Words that make the value after them a secret. `token` is weaker: `max_tokens = 1024` is not one.
_SECRET_WORD = r"passw(?:or)?d|passwd|passphrase|secret|api[_-]?key|apikey|private[_-]?key|access[_-]?key|credentials?"
_TOKEN_WORD = r"token"
# A key's tail (`_key`, `_access_key`, `.value`), then an optional closing quote and a separator.
# `=(?!=)` so that `password == expected` is a comparison, not an assignment.
_ASSIGNMENT = re.compile(
    rf"""(?ix)
    (?P<key>
        (?P<word>{_SECRET_WORD}|{_TOKEN_WORD})[\w.-]{{0,40}}
        ["'`]?[ \t]{{0,16}}(?::=|=>|=(?!=)|:)[ \t]{{0,16}}
    )
    (?P<value>
        "[^"\n]{{1,256}}" | '[^'\n]{{1,256}}' | `[^`\n]{{1,256}}`   # quoted: keep the quotes
      | ["'`]?[^\s"'`,;&]+        # bare, or a quoted one too long for the above: up to a space
    )
    """
)
# `--password hunter2`: a command-line flag whose value follows a space.
_FLAG = re.compile(
    rf"(?i)(?P<key>(?<![\w-])--?(?:[a-z0-9]+[-_]){{0,3}}(?:{_SECRET_WORD}|{_TOKEN_WORD})[ \t]+)"
    r"(?P<value>[^\s\-\"'][^\s\"']*)"
)
# `Authorization: Bearer abc`, keeping the scheme; and a bare `Bearer <token>`.
_AUTHORIZATION = re.compile(
    r"""(?i)(?P<key>(?:proxy-)?authori[sz]ation["']?[ \t]{0,16}[:=][ \t]{0,16}["']?"""
    r"""(?:(?:bearer|basic|token|digest|negotiate)[ \t]+)?)(?P<value>[^\s"',;]+)"""
)
_BEARER = re.compile(r"(?i)(?P<key>(?<![\w-])bearer[ \t]+)(?P<value>[A-Za-z0-9._~+/=-]{16,})")
# `scheme://user:password@host`: the password goes, the user stays. Percent-encoding keeps `/`
# out of a valid password, so the scan stops at the first `/` or space.
_URL_USERINFO = re.compile(
    r"(?i)(?P<key>(?<![a-z0-9+.-])[a-z][a-z0-9+.-]{1,20}://[^\s:/@\"'<>]{0,256}:)(?P<value>[^\s/\"'<>]*)(?=@)"
)

# Known credential formats, matched anywhere; each starts where its run of characters starts.
# With each, the lower-cased literals one of which a text must hold for it to be worth running.
_FORMATS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        r"(?<![A-Za-z0-9])(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z2-7]{16}(?![A-Za-z0-9])",  # AWS key id
        ("akia", "asia", "agpa", "aida", "aroa", "anpa", "anva", "aipa"),
    ),
    (
        r"(?<![A-Za-z0-9_-])sk-(?:ant-(?:api\d\d-)?|proj-|svcacct-|admin-)?(?=[A-Za-z0-9_-]{0,60}\d)[A-Za-z0-9_-]{20,}",
        ("sk-",),
    ),  # Anthropic, OpenAI
    (r"(?<![A-Za-z0-9_])[rs]k_(?:live|test)_[A-Za-z0-9]{16,}", ("k_live_", "k_test_")),  # Stripe
    (r"(?<![A-Za-z0-9_])gh[pousr]_[A-Za-z0-9]{36,}", ("ghp_", "gho_", "ghu_", "ghs_", "ghr_")),  # GitHub
    (r"(?<![A-Za-z0-9_])github_pat_[A-Za-z0-9_]{22,}", ("github_pat_",)),
    (r"(?<![A-Za-z0-9_])mk_[0-9a-f]{16}_[A-Za-z0-9_-]{20,}", ("mk_",)),  # our gateway's API keys
    (r"(?<![A-Za-z0-9-])xox[abposr]-[A-Za-z0-9-]{10,}", ("xox",)),  # Slack
    (r"hooks\.slack\.com/services/T[A-Za-z0-9]{1,40}/B[A-Za-z0-9]{1,40}/[A-Za-z0-9]{1,100}", ("hooks.slack.com",)),
    (r"(?<![A-Za-z0-9_-])AIza[0-9A-Za-z_-]{35}", ("aiza",)),  # Google API key
    (r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*", ("eyj",)),  # JWT
    # A PEM private key, header to footer; with no footer, to the end (fail closed).
    (
        r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----[^-]*(?:-(?!----)[^-]*)*"
        r"(?:-----END [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----)?",
        ("-----begin",),
    ),
)
# A dict key (a log field, a header name, a JSON member) whose value is a secret whole.
_SECRET_KEY = re.compile(
    rf"(?i){_SECRET_WORD}|authori[sz]ation|cookie|^(?:x-)?api-?key$|(?<![a-z])token(?!s)(?!_?(?:count|type|usage|limit))"
)


def _keep_key(match: re.Match[str]) -> str:
    value = match.group("value")
    if value.startswith(REDACTED) or _is_harmless(match, value):
        return match.group(0)
    quote = value[0] if value[0] in "\"'`" else ""
    closing = quote if quote and len(value) > 1 and value[-1] == quote else ""
    return f"{match.group('key')}{quote}{REDACTED}{closing}"


def _is_harmless(match: re.Match[str], value: str) -> bool:
    # `max_tokens: 1024`, `input_tokens=12`: a count, not a token
    groups = match.groupdict()
    return bool(groups.get("word")) and groups["word"].lower() == "token" and value.isdigit()


# (pattern, replacement, literals): a pattern runs only if one of its literals is in the
# lower-cased text, so ordinary text costs a few substring checks, not a dozen regex scans.
_KEYWORDS = ("passw", "passphrase", "secret", "api", "private", "access", "credential", "token")
_SUBSTITUTIONS: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str] | str, tuple[str, ...]], ...] = (
    *((re.compile(pattern), REDACTED, literals) for pattern, literals in _FORMATS),
    (_URL_USERINFO, _keep_key, ("://",)),
    (_AUTHORIZATION, _keep_key, ("authori",)),
    (_BEARER, _keep_key, ("bearer",)),
    (_FLAG, _keep_key, _KEYWORDS),
    (_ASSIGNMENT, _keep_key, _KEYWORDS),
)


_ALL_LITERALS = tuple(sorted({literal for _, _, literals in _SUBSTITUTIONS for literal in literals}))
_SHORTEST = 7  # `token:x`; anything shorter holds no secret any pattern here finds


def redact(text: str) -> str:
    """`text` with secret values and known credential formats replaced by `[REDACTED]`."""
    if len(text) < _SHORTEST:
        return text
    if len(text) <= _CACHED_UP_TO:
        return _redact_short(text)
    return _redact(text)


# Short texts repeat: a rule's message, a rationale's opening, a log field. Each is redacted once.
_CACHED_UP_TO = 1024


@lru_cache(maxsize=8192)
def _redact_short(text: str) -> str:
    return _redact(text)


def _redact(text: str) -> str:
    lower = text.lower()  # redacting only removes text, so what it lacks now it lacks later
    if not any(literal in lower for literal in _ALL_LITERALS):
        return text  # the common case (log fields, prose): one pass of substring checks
    for pattern, replacement, literals in _SUBSTITUTIONS:
        if any(literal in lower for literal in literals):
            text = pattern.sub(replacement, text)
    return text


@lru_cache(maxsize=4096)
def is_secret_key(key: str) -> bool:
    """Whether a field, header or member named `key` holds a secret as its whole value."""
    return bool(_SECRET_KEY.search(key[:100]))


def redact_value(value: Any, *, key: str | None = None) -> Any:
    """`value` with every string in it redacted, walking dicts, lists and tuples.

    A string under a secret-looking key (`password`, `Authorization`, `api_key`) is replaced whole.
    Anything else (numbers, objects) is returned as it is.
    """
    if isinstance(value, str):
        return REDACTED if key is not None and value and is_secret_key(key) else redact(value)
    if isinstance(value, dict):
        return {k: redact_value(v, key=k if isinstance(k, str) else None) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_value(v, key=key) for v in value]
    if isinstance(value, tuple):
        return tuple(redact_value(v, key=key) for v in value)
    return value
