"""The other ways a secret can be written on a line, for the rules that look for secrets.

A key split into literals (`"AKIA" + "Z3ME…"`, `"".join(["sk_live_", …])`, `["ghp_", …].join("")`),
written with escapes (`"\\x41\\x4b…"`, `"\\u0041…"`) or base64-encoded (a Kubernetes Secret's
`data:`, `b64decode("aHR0cHM6…")`) is still the key. `variants(text)` gives the line read each
of those ways — only the readings that differ from the line, so a plain line costs one check.
"""

from __future__ import annotations

import base64
import binascii
import re

# Adjacent string literals: joined by `+`, written side by side, or items of a list that `join` glues.
_CONCATENATED = re.compile(r"""(["'`])\s*\+?\s*\1""")
_LISTED = re.compile(r"""(["'`])\s*,\s*\1""")  # `["sk_live_", "51Hq…"]`, whatever joins it later
_ESCAPE = re.compile(r"\\(?:x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|u\{([0-9a-fA-F]{1,6})\}|([0-3][0-7]{2}))")
# Base64 (standard or URL-safe) long enough to hold a key; bounded so one token cannot cost much.
_BASE64 = re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{16,4096}={0,2}(?![A-Za-z0-9+/_=-])")
_MAX_TOKENS = 8  # base64 tokens decoded per line
_PRINTABLE = 0.9  # share of printable characters a decoded token needs to be text


def glued(text: str) -> str:
    """`text` with adjacent string literals glued into one (`"ab" + "cd"`, `["ab", "cd"]` → `"abcd"`)."""
    return _LISTED.sub("", _CONCATENATED.sub("", text))


def unescaped(text: str) -> str:
    """`text` with `\\xNN`, `\\uNNNN`, `\\u{N…}` and octal `\\NNN` escapes decoded."""

    def decode(match: re.Match[str]) -> str:
        code = next(group for group in match.groups() if group is not None)
        base = 8 if match.group(4) is not None else 16
        value = int(code, base)
        return chr(value) if value < 0x110000 else match.group(0)

    return _ESCAPE.sub(decode, text)


def _as_text(token: str) -> str | None:
    padded = token + "=" * (-len(token) % 4)
    decoders = (base64.urlsafe_b64decode,) if "-" in token or "_" in token else (base64.b64decode,)
    for decoder in decoders:
        try:
            raw = decoder(padded)
        except (binascii.Error, ValueError):
            continue
        if len(raw) < 8:
            return None
        # Keys, tokens and PEM blocks are ASCII text: anything else decoded by chance is noise.
        readable = sum(1 for byte in raw if 0x20 <= byte < 0x7F or byte in b"\n\r\t")
        if readable >= _PRINTABLE * len(raw):
            return " ".join(raw.decode("ascii", "replace").split())  # a decoded PEM block becomes one line
    return None


def base64_decoded(text: str) -> str:
    """`text` with each base64 token that decodes to readable text replaced by that text."""
    decoded = 0

    def decode(match: re.Match[str]) -> str:
        nonlocal decoded
        if decoded >= _MAX_TOKENS:
            return match.group(0)
        decoded += 1
        return _as_text(match.group(0)) or match.group(0)

    return _BASE64.sub(decode, text)


def variants(text: str) -> list[str]:
    """The readings of `text` a secret could hide in — glued, unescaped, base64-decoded, and
    base64-decoded after either — each only when it differs from `text` and from the others."""
    found: list[str] = []
    for reading in (glued(text), unescaped(text)):
        for candidate in (reading, base64_decoded(reading)):
            if candidate != text and candidate not in found:
                found.append(candidate)
    return found
