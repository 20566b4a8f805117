"""API keys: issued once in plaintext, stored hashed in one JSON file, looked up per request.

A key reads `mk_<key id>_<secret>`. The key id finds the record (it is not secret: it shows in
`mesh gateway keys list`); the secret proves possession. The file (`settings.api_keys_path`)
holds, per client name, the key id, the SHA-256 of the secret, the scopes and when it was
created or revoked — never a plaintext secret. `issue_key`, `revoke_key` and `list_keys` are for
the CLI and `mesh up`; `ApiKeyStore` is the running gateway's view, read again whenever the file
changes, so a key added or revoked takes effect without a restart.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import os
import re
import secrets
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import structlog
from pydantic import BaseModel, Field, ValidationError

from services.gateway.callers import READ_RELEASES, publish_scope

KEY_PREFIX = "mk_"
DEFAULT_SCOPES = (publish_scope("release.proposed"), READ_RELEASES)
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# Parts joined by `:`; `*` is the only wildcard (Caller.allows matches with fnmatch, so `?` and
# `[` would be wildcards too: refused rather than granted by surprise).
SCOPE = re.compile(r"^[A-Za-z0-9_.*-]+(:[A-Za-z0-9_.*-]+)*$")
# Hex, so it never holds the `_` that separates it from the secret (token_urlsafe's can).
_KEY_ID = re.compile(r"^[0-9a-f]{16}$")


def _log():
    """A logger bound at the call: one bound at import keeps the logging configuration it first
    saw (bus/logs.py caches loggers), and would miss a later one."""
    return structlog.get_logger(__name__)


class KeyFileError(ValueError):
    """The keys file exists but is not one `mesh gateway keys` wrote (or cannot be read)."""


class KeyNameTaken(ValueError):
    """A live key already has this client name (issue with `replace=True` to rotate it)."""


class ApiKey(BaseModel):
    """One client's key as anyone may see it: everything but the secret and its hash."""

    name: str = Field(description="The client's name; its caller id is `key:<name>`.", examples=["ci-pipeline"])
    key_id: str = Field(description="The public part of the key, after `mk_`.", examples=["3f9a0c1d2e4b5a69"])
    scopes: list[str] = Field(description="What the client may do.", examples=[list(DEFAULT_SCOPES)])
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


class StoredKey(ApiKey):
    # SHA-256, not a slow password hash: the secret is 256 random bits (token_urlsafe(32)), so
    # there is no dictionary to walk and no brute force to slow down; a fast hash keeps every
    # request's check to a microsecond.
    secret_sha256: str


class KeyFile(BaseModel):
    keys: list[StoredKey] = Field(default_factory=list)


def split_key(token: str) -> tuple[str, str] | None:
    """`(key id, secret)` of a well-formed `mk_<key id>_<secret>`, or None."""
    prefix, _, rest = token.partition(KEY_PREFIX)
    key_id, _, secret = rest.partition("_")
    if prefix or not _KEY_ID.match(key_id) or not secret:
        return None
    return key_id, secret


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise ValueError(f"client name {name!r}: use letters, digits, '.', '-' or '_' (at most 64)")
    return name


def check_scopes(scopes: Iterable[str]) -> list[str]:
    """The scopes, deduplicated in order; ValueError naming the first malformed one."""
    checked = list(dict.fromkeys(scopes))
    if not checked:
        raise ValueError("a key needs at least one scope, e.g. releases:read")
    for scope in checked:
        if not SCOPE.match(scope):
            raise ValueError(
                f"scope {scope!r}: parts joined by ':' with '*' as the only wildcard, "
                "e.g. events:release.proposed:publish or releases:read"
            )
    return checked


# --- managing the file (CLI, `mesh up`) ------------------------------------------------------


def issue_key(
    path: Path,
    name: str,
    scopes: Iterable[str] = DEFAULT_SCOPES,
    *,
    replace: bool = False,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> str:
    """Give client `name` a new key with these scopes and return it — the only time the plaintext
    exists anywhere. A name whose key is live raises KeyNameTaken unless `replace` (which revokes
    the old key by overwriting it); a revoked one is simply replaced."""
    check_name(name)
    scopes = check_scopes(scopes)
    with _locked(path):
        stored = _read(path)
        old = next((key for key in stored.keys if key.name == name), None)
        if old is not None and not old.revoked and not replace:
            raise KeyNameTaken(f"client {name!r} already has a live key ({old.key_id})")
        taken = {key.key_id for key in stored.keys}
        key_id = secrets.token_hex(8)
        while key_id in taken:
            key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        new = StoredKey(name=name, key_id=key_id, scopes=scopes, created_at=now(), secret_sha256=digest(secret))
        _write(path, KeyFile(keys=[*(key for key in stored.keys if key.name != name), new]))
    return f"{KEY_PREFIX}{key_id}_{secret}"


def revoke_key(path: Path, name: str, *, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> bool:
    """Revoke client `name`'s key; False when it has no live key. The record stays (marked
    revoked) so `list_keys` still shows who had access and until when."""
    with _locked(path):
        stored = _read(path)
        live = [key for key in stored.keys if key.name == name and not key.revoked]
        if not live:
            return False
        for key in live:
            key.revoked_at = now()
        _write(path, stored)
    return True


def list_keys(path: Path) -> list[ApiKey]:
    """Every key in the file, revoked ones too, by name; never a hash."""
    return sorted(
        (ApiKey.model_validate(key.model_dump(exclude={"secret_sha256"})) for key in _read(path).keys),
        key=lambda key: key.name,
    )


def _read(path: Path) -> KeyFile:
    try:
        return _parse(path, path.read_bytes())
    except FileNotFoundError:
        return KeyFile()


def _parse(path: Path, raw: bytes) -> KeyFile:
    try:
        return KeyFile.model_validate_json(raw)
    except ValidationError as exc:
        problem = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in problem["loc"])
        raise KeyFileError(
            f"{path} is not an API keys file ({where + ': ' if where else ''}{problem['msg']}); "
            "fix it or move it away and issue the keys again"
        ) from None


def _write(path: Path, keys: KeyFile) -> None:
    """Replace the file in one step (a reader sees the old file or the new, never half), private
    from its first byte: mkstemp creates it 0600."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(keys.model_dump_json(indent=2) + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold the file's lock for a read-change-write: two `keys add` at once both land."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    with open(path.parent / f".{path.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


# --- the running gateway's view --------------------------------------------------------------


class ApiKeyStore:
    """The keys in one file, as the gateway checks them: read again whenever the file changes.

    Checking costs one `stat` per request. A file that cannot be read or parsed counts as no keys
    (fail closed: a broken edit must not keep a revoked key working) and is logged once per change.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: tuple[int, int, int] | None = None  # (inode, size, mtime) of the file read
        self._by_id: dict[str, StoredKey] = {}
        self._problem: str | None = None  # the last one logged

    def find(self, token: str) -> ApiKey | None:
        """The key `token` is (revoked or not: check `.revoked`), or None when it is malformed,
        unknown, or its secret is wrong."""
        parts = split_key(token)
        if parts is None:
            return None
        key_id, secret = parts
        stored = self._keys().get(key_id)
        # Constant-time, so response times do not reveal how much of a guessed secret was right.
        if stored is None or not hmac.compare_digest(stored.secret_sha256, digest(secret)):
            return None
        return ApiKey.model_validate(stored.model_dump(exclude={"secret_sha256"}))

    def _keys(self) -> dict[str, StoredKey]:
        try:
            with open(self.path, "rb") as file:
                # fstat the file we read, so what we remember is what we parsed
                stat = os.fstat(file.fileno())
                seen = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
                if seen != self._seen:
                    self._by_id, self._seen = self._index(file.read()), seen
        except FileNotFoundError:
            self._by_id, self._seen = {}, None
        except OSError as exc:
            self._by_id, self._seen = {}, None
            self._report(f"cannot read {self.path}: {exc.strerror or exc}")
        return self._by_id

    def _index(self, raw: bytes) -> dict[str, StoredKey]:
        try:
            keys = _parse(self.path, raw).keys
        except KeyFileError as exc:
            self._report(str(exc))
            return {}
        self._problem = None
        _log().info("gateway.api_keys_loaded", path=str(self.path), keys=len(keys))
        return {key.key_id: key for key in keys}

    def _report(self, problem: str) -> None:
        if problem != self._problem:  # once, not on every request while it lasts
            self._problem = problem
            _log().error("gateway.api_keys_refused", path=str(self.path), why=problem, effect="no API key is accepted")
