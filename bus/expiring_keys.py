"""Keys with a TTL in a KV bucket (`Nats-TTL`, the bucket made with `limit_marker_ttl`): claim
one that nobody holds, read one that may have expired.

nats-py 2.16 does not know the marker nats-server leaves when a key's TTL ends (a message with
`Nats-Marker-Reason` and no `KV-Operation`): `get` returns it as an empty value, and `create`
takes it for a live key, so a key could not be claimed again until the marker itself expired.
These two functions treat an empty value as "nobody holds it".
"""

from __future__ import annotations

from nats.js.errors import BadRequestError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

# What the server answers a write whose expected last sequence is stale.
_WRONG_LAST_SEQUENCE = (10071, 10164)


async def read(kv: KeyValue, key: str) -> tuple[bytes, int] | None:
    """The value and revision of a live key; None when it is missing, deleted or expired."""
    try:
        entry = await kv.get(key)
    except KeyNotFoundError:
        return None
    return (entry.value, entry.revision) if entry.value else None


async def claim(kv: KeyValue, key: str, value: bytes, *, ttl: float) -> bool:
    """Create `key` with `value` for `ttl` seconds: True if this call did, False if it is held
    (by anyone, this caller included). Exactly one of several racing claims wins."""
    if await _create(kv, key, value, ttl):
        return True
    try:
        entry = await kv.get(key)
    except KeyNotFoundError:
        return await _create(kv, key, value, ttl)  # gone since: whoever creates it now wins
    if entry.value:
        return False
    # An expiry marker: replace it with a delete marker, which create() does overwrite; only if it
    # is still the latest, so that a claim made meanwhile stands.
    try:
        await kv.delete(key, last=entry.revision)
    except BadRequestError as exc:
        if exc.err_code in _WRONG_LAST_SEQUENCE:
            return False
        raise
    return await _create(kv, key, value, ttl)


async def _create(kv: KeyValue, key: str, value: bytes, ttl: float) -> bool:
    try:
        await kv.create(key, value, msg_ttl=ttl)
    except (KeyWrongLastSequenceError, KeyNotFoundError):
        # KeyNotFoundError: the key vanished between the two steps of nats-py's create()
        return False
    return True
