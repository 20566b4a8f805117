"""Who may send the gateway webhooks: one signing secret and scheme per source, kept in a file.

The file (`$MESH_HOME/gateway/webhooks.json`, mode 0600 in a 0700 folder) reads

    {"sources": {"<name>": {"scheme": "standard" | "github", "secret": "...", "event_type": "release.proposed"}}}

`WebhookSources` reads it again whenever it changes, so adding or removing a source needs no
restart. A broken edit never takes webhooks down: the last good sources stay in force and the
problem is logged, naming the field.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from standardwebhooks import Webhook
from standardwebhooks.webhooks import EmptyWebhookSecretError

from contracts.catalog import CONTRACTS

Scheme = Literal["standard", "github"]
DEFAULT_EVENT_TYPE = "release.proposed"
# Names travel in URLs (`/v1/webhooks/{name}`), caller ids and KV keys: keep them plain.
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")

log = structlog.get_logger(__name__)


class WebhookSourcesInvalid(ValueError):
    """The webhook sources file, or a source given to `add_source`, is not usable; the message
    names the file, the source and the field."""


@dataclass(frozen=True)
class WebhookSource:
    """One sender of webhooks: how it signs (`scheme`), with what, and which event its body is."""

    name: str
    scheme: Scheme
    # repr=False: a source that reaches a log line or a traceback must not carry its secret there
    secret: str = field(repr=False)
    event_type: str = DEFAULT_EVENT_TYPE


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scheme: Scheme
    secret: str = Field(min_length=1)
    event_type: str = DEFAULT_EVENT_TYPE

    @field_validator("event_type")
    @classmethod
    def _publishable(cls, value: str) -> str:
        contract = CONTRACTS.get(value)
        if contract is None or not contract.publishable:
            known = ", ".join(sorted(n for n, c in CONTRACTS.items() if c.publishable))
            raise ValueError(f"{value!r} is not an event the gateway publishes ({known})")
        return value


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sources: dict[str, _Entry] = Field(default_factory=dict)


def _check_secret(name: str, scheme: Scheme, secret: str) -> None:
    """A standard secret must decode as the spec's `whsec_<base64>`; caught here, not at the first
    request, where it would be a 500. Messages never include the secret."""
    if scheme != "standard":
        return
    try:
        Webhook(secret)
    except (binascii.Error, ValueError, EmptyWebhookSecretError):
        raise WebhookSourcesInvalid(
            f"webhook source {name!r}: its secret is not a Standard Webhooks secret (`whsec_` and base64)"
        ) from None


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise WebhookSourcesInvalid(
            f"webhook source name {name!r} must be 1-64 letters, digits, '-' or '_' (it goes into the URL)"
        )


def read_sources(path: Path) -> dict[str, WebhookSource]:
    """Every source in the file (none when it does not exist), or WebhookSourcesInvalid."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise WebhookSourcesInvalid(f"{path}: cannot be read ({exc.__class__.__name__}: {exc})") from None
    try:
        parsed = _File.model_validate_json(text)
    except ValidationError as exc:
        # loc and msg only: str(exc) would quote the input, which may be a secret
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(file)'}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        raise WebhookSourcesInvalid(f"{path}: {problems}") from None
    try:
        for name, entry in parsed.sources.items():
            _check_name(name)
            _check_secret(name, entry.scheme, entry.secret)
    except WebhookSourcesInvalid as exc:
        raise WebhookSourcesInvalid(f"{path}: {exc}") from None
    return {
        name: WebhookSource(name, entry.scheme, entry.secret, entry.event_type)
        for name, entry in parsed.sources.items()
    }


class WebhookSources:
    """The sources in force, read from `path` again when its size, mtime or inode changes.

    Construction reads the file, so a gateway started with a broken one fails at once. A file
    broken later leaves the last good sources in force (and logs why); a missing file means no
    sources at all, so deleting it shuts every webhook out.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        # stamped before reading: a change made while we read is seen as a change at the next get
        self._seen = self._stamp()
        self._sources = read_sources(path)

    def get(self, name: str) -> WebhookSource | None:
        """The source called `name`, from the file as it is now; None if there is none."""
        self._reload_if_changed()
        return self._sources.get(name)

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return None
        # the inode too: add_source replaces the file, which can keep size and (coarse) mtime
        return stat.st_mtime_ns, stat.st_size, stat.st_ino

    def _reload_if_changed(self) -> None:
        stamp = self._stamp()
        if stamp == self._seen:
            return
        self._seen = stamp  # a broken file is reported once, not on every request
        try:
            self._sources = read_sources(self.path)
        except WebhookSourcesInvalid as exc:
            log.warning("webhook sources file invalid; keeping the last good sources", problem=str(exc))
            return
        log.info("webhook sources read", path=str(self.path), sources=sorted(self._sources))


def _new_secret(scheme: Scheme) -> str:
    if scheme == "standard":
        # the Standard Webhooks format: `whsec_` and the base64 of 24-64 random bytes
        return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    return secrets.token_hex(32)


def add_source(
    path: Path,
    name: str,
    scheme: Scheme,
    event_type: str = DEFAULT_EVENT_TYPE,
    *,
    secret: str | None = None,
    replace: bool = False,
) -> str:
    """Add a webhook source to the file and return its secret, to give to the sender.

    The secret is generated unless given (some senders issue their own). A name already taken is
    an error unless `replace`, which also rotates the secret: the old one stops working at once.
    """
    _check_name(name)
    entry = _parse_entry(name, {"scheme": scheme, "secret": secret or _new_secret(scheme), "event_type": event_type})
    sources = _raw_sources(path)
    if name in sources and not replace:
        raise WebhookSourcesInvalid(f"webhook source {name!r} exists in {path}; remove it first, or replace it")
    sources[name] = entry
    _write_private(path, sources)
    return entry["secret"]


def remove_source(path: Path, name: str) -> bool:
    """Remove a webhook source from the file; False if it was not there."""
    sources = _raw_sources(path)
    if sources.pop(name, None) is None:
        return False
    _write_private(path, sources)
    return True


def _parse_entry(name: str, raw: dict) -> dict:
    try:
        entry = _Entry.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False))
        raise WebhookSourcesInvalid(f"webhook source {name!r}: {problems}") from None
    _check_secret(name, entry.scheme, entry.secret)
    return entry.model_dump()


def _raw_sources(path: Path) -> dict[str, dict]:
    """The file's sources as plain dicts, checked first: a broken file is reported, never overwritten."""
    return {
        name: {"scheme": s.scheme, "secret": s.secret, "event_type": s.event_type}
        for name, s in read_sources(path).items()
    }


def _write_private(path: Path, sources: dict[str, dict]) -> None:
    """Replace the file atomically (readers see the old or the new, never half), readable by its
    owner only, in a folder only its owner can enter (someone who could write the folder could
    swap the file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(json.dumps({"sources": sources}, indent=2, sort_keys=True) + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
