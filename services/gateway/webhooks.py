"""Signed webhooks: is this request really from the source it names, and have we seen it before?

Pure of HTTP: `verify` takes the headers (names in lower case) and the raw body, and either
returns the delivery or raises `WebhookRefused` with the status to answer. The route looks the
source up and verifies before it reads anything in the body; then it parses the body, claims the
delivery with `first_delivery` (a replay publishes nothing) and publishes.

Two schemes:
- **standard** (https://www.standardwebhooks.com): `webhook-id`, `webhook-timestamp` and
  `webhook-signature` (`v1,<base64>`, several separated by spaces while the sender rotates its
  key) over `id.timestamp.body`, signed as the `standardwebhooks` package signs;
- **github**: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>` and `X-GitHub-Delivery`.

A refusal's `detail` says which check failed and never quotes a secret or an expected signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from nats.js.kv import KeyValue
from standardwebhooks import Webhook

from bus.expiring_keys import claim
from contracts.subjects import subject_token
from services.gateway.webhook_sources import WebhookSource, WebhookSources

# The sources are re-exported: the route imports everything about webhooks from here.
__all__ = [
    "WebhookDelivery",
    "WebhookRefused",
    "WebhookSource",
    "WebhookSources",
    "find_source",
    "first_delivery",
    "forget_delivery",
    "replay_window",
    "verify",
]

# GitHub signs no timestamp, so nothing bounds a replay but memory: remember its deliveries this long.
GITHUB_REPLAY_SECONDS = 7 * 24 * 3600.0
# Gateway replicas and the nats-server that expires keys may disagree on the time by this much.
CLOCK_SLACK_SECONDS = 60.0
# 11 digits reach the year 5138; more would overflow datetime (a huge tolerance lets them through)
_UNIX_SECONDS = re.compile(r"[0-9]{1,11}")


class WebhookRefused(Exception):
    """A webhook the gateway will not take: `status` to answer (401, or 404 for an unknown source)
    and `detail`, one sentence for the sender."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class WebhookDelivery:
    """A verified delivery. `id` is what the sender calls it (for logs and answers); `replay_key` is
    what replay protection remembers, and is always covered by the signature."""

    id: str
    replay_key: str

    def __str__(self) -> str:
        return self.id


def find_source(sources: WebhookSources, name: str) -> WebhookSource:
    """The source called `name`, or WebhookRefused(404).

    404 rather than 401: a source's name is no secret (it is in the URL given to the sender and
    in the caller id of every event it publishes), knowing it exists is worth nothing without its
    secret, and a 404 tells whoever sets up a sender that the URL is wrong, not the secret.
    """
    source = sources.get(name)
    if source is None:
        raise WebhookRefused(404, f"No webhook source is called {name!r}; check the URL given to the sender.")
    return source


def verify(
    source: WebhookSource,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance: float,
    now: datetime | None = None,
) -> WebhookDelivery:
    """The delivery if `body` and `headers` are signed with `source`'s secret (and, for the standard
    scheme, timestamped within `tolerance` seconds of `now`, either way); else WebhookRefused(401)."""
    if source.scheme == "github":
        return _verify_github(source, headers, body)
    return _verify_standard(source, headers, body, tolerance=tolerance, now=now or datetime.now(UTC))


def _required(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if not value:
        raise WebhookRefused(401, f"The {name} header is missing; a signed webhook must carry it.")
    return value


def _verify_standard(
    source: WebhookSource, headers: Mapping[str, str], body: bytes, *, tolerance: float, now: datetime
) -> WebhookDelivery:
    delivery_id = _required(headers, "webhook-id")
    stamp = _required(headers, "webhook-timestamp")
    signatures = _required(headers, "webhook-signature")
    if not _UNIX_SECONDS.fullmatch(stamp):
        raise WebhookRefused(401, "The webhook-timestamp header is not a Unix time in whole seconds.")
    age = now.timestamp() - int(stamp)
    if age > tolerance:
        raise WebhookRefused(
            401, f"The webhook is {age:.0f} s old, more than the {tolerance:.0f} s allowed; send it again, signed now."
        )
    if -age > tolerance:
        raise WebhookRefused(
            401,
            f"The webhook is dated {-age:.0f} s in the future, more than {tolerance:.0f} s; check the sender's clock.",
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        # the package signs text; a lossy decoding would let two bodies share one signature
        raise WebhookRefused(401, "The body is not UTF-8 text, so no signature can match it.") from None
    # We sign with the package and compare ourselves rather than call `Webhook.verify`: its
    # tolerance is fixed at 5 minutes on the wall clock (ours is configured, and `now` is
    # injected), and a malformed signature header makes it raise ValueError instead of refusing.
    signed = Webhook(source.secret).sign(delivery_id, datetime.fromtimestamp(int(stamp), UTC), text)
    expected = base64.b64decode(signed.partition(",")[2])
    for candidate in signatures.split(" "):
        version, _, value = candidate.partition(",")
        if version != "v1":
            continue  # a scheme we do not know (the spec reserves v1a for asymmetric keys)
        try:
            given = base64.b64decode(value, validate=True)
        except ValueError:
            continue
        if hmac.compare_digest(given, expected):
            # webhook-id is inside the signed content, so it can serve as the replay key
            return WebhookDelivery(id=delivery_id, replay_key=delivery_id)
    raise WebhookRefused(401, "No webhook-signature matches this body signed with the source's secret.")


def _verify_github(source: WebhookSource, headers: Mapping[str, str], body: bytes) -> WebhookDelivery:
    signature = _required(headers, "x-hub-signature-256")
    delivery_id = _required(headers, "x-github-delivery")
    algorithm, _, given = signature.partition("=")
    expected = hmac.new(source.secret.encode(), body, hashlib.sha256).hexdigest()
    # as bytes: compare_digest raises on a non-ASCII str, and a header may hold anything
    if algorithm != "sha256" or not hmac.compare_digest(given.lower().encode("utf-8", "replace"), expected.encode()):
        raise WebhookRefused(401, "X-Hub-Signature-256 does not match this body signed with the source's secret.")
    # X-GitHub-Delivery is not signed: anyone replaying a captured request could change it. The
    # body is signed, and GitHub's own redelivery resends it unchanged, so the body is the key.
    return WebhookDelivery(id=delivery_id, replay_key="sha256:" + hashlib.sha256(body).hexdigest())


def replay_window(source: WebhookSource, *, tolerance: float, github: float = GITHUB_REPLAY_SECONDS) -> float:
    """How long to remember a delivery (the `ttl` for `first_delivery`) so that every replay the
    signature check would still accept is caught.

    Standard: a timestamp `t` passes from `t - tolerance` to `t + tolerance` on our clock, so a
    replay can come at most 2 × tolerance after the first delivery; remember it that long, plus
    slack for clocks that disagree. GitHub signs no timestamp, so a captured delivery stays valid
    forever: remember it for `github` seconds (7 days by default).
    """
    if source.scheme == "github":
        return github
    return 2 * tolerance + CLOCK_SLACK_SECONDS


def _key(source: str, delivery: WebhookDelivery) -> str:
    # hashed: a sender's id may hold any character, and a KV key may not
    return f"hook.{subject_token(source)}.{hashlib.sha256(delivery.replay_key.encode()).hexdigest()[:32]}"


async def first_delivery(kv: KeyValue, source: str, delivery: WebhookDelivery, *, ttl: float) -> bool:
    """Record a delivery in the gateway's bucket (shared by every replica): True the first time,
    False when `source` already made the same delivery in the last `ttl` seconds (`replay_window`).
    Deliveries are told apart by their `replay_key`, never by the id a sender could change unsigned.

    A delivery whose publishing then fails must be forgotten (`forget_delivery`), or the sender's
    retry would be refused as a replay and the event lost.
    """
    if ttl < 1:
        raise ValueError(f"ttl must be at least 1 s (nats-server's smallest message TTL), not {ttl}")
    return await claim(kv, _key(source, delivery), b"1", ttl=ttl)


async def forget_delivery(kv: KeyValue, source: str, delivery: WebhookDelivery) -> None:
    """Forget a delivery recorded by `first_delivery` (its publishing failed), so the sender's retry is taken."""
    # the purge marker expires too, as the delivery's record would have
    await kv.purge(_key(source, delivery), msg_ttl=CLOCK_SLACK_SECONDS)
