"""How every process connects to NATS: the same options everywhere, from the settings."""

from __future__ import annotations

import ssl
from pathlib import Path

import nats
from nats.aio.client import Client

from bus.errors import MeshError
from bus.permissions import inbox_prefix
from bus.settings import BusSettings


def connect_options(settings: BusSettings, *, name: str) -> dict:
    """Options of a raw nats-py client (`nats.connect(**options)`).

    Reconnect forever: a NATS restart must never take a service down with it.
    """
    options: dict = {
        "servers": settings.nats_servers,
        "name": name,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 0.5,
        "connect_timeout": 5,
        "inbox_prefix": inbox_of(settings, name),
    }
    if settings.nats_credentials:
        options[credential_kind(settings.nats_credentials)] = str(settings.nats_credentials)
    if (tls := tls_context(settings)) is not None:
        options["tls"] = tls
    return options


def broker_options(settings: BusSettings, *, name: str) -> dict:
    """The same options in FastStream's terms: credentials and TLS go in `security=`."""
    from faststream.nats import NatsCredentials, NatsNKey, NatsSecurity

    options = connect_options(settings, name=name)
    credentials, tls = options.pop("user_credentials", None), options.pop("tls", None)
    if seed := options.pop("nkeys_seed", None):
        options["security"] = NatsNKey(seed, ssl_context=tls)
    elif credentials:
        options["security"] = NatsCredentials(credentials, ssl_context=tls)
    elif tls is not None:
        options["security"] = NatsSecurity(ssl_context=tls)
    return options


def inbox_of(settings: BusSettings, name: str) -> str:
    """This process's inbox prefix: its identity's (the only one it may listen on when the
    server enforces identities), else its own name."""
    if settings.nats_identity:
        return inbox_prefix(settings.nats_identity)
    if settings.nats_credentials:
        return inbox_prefix(settings.nats_credentials.stem)
    return inbox_prefix(name)


def credential_kind(path: Path) -> str:
    """nats-py's option for a credential file: an nkey seed (`SU…`) or a .creds file (JWT + seed)."""
    try:
        head = path.read_text(errors="replace").lstrip()[:2]
    except OSError as exc:
        raise MeshError(f"MESH_NATS_CREDENTIALS: cannot read {path}: {exc.strerror}") from None
    return "nkeys_seed" if head == "SU" else "user_credentials"


def tls_context(settings: BusSettings) -> ssl.SSLContext | None:
    """A TLS context for a private CA and/or a client certificate; None leaves nats-py's default
    (no TLS for nats:// URLs, the system's CAs for tls:// URLs)."""
    if not (settings.nats_tls_ca or settings.nats_tls_cert):
        return None
    context = ssl.create_default_context(cafile=str(settings.nats_tls_ca) if settings.nats_tls_ca else None)
    if settings.nats_tls_cert:
        key = settings.nats_tls_key or settings.nats_tls_cert
        context.load_cert_chain(str(settings.nats_tls_cert), str(key))
    return context


async def connect(settings: BusSettings, *, name: str) -> Client:
    """A raw nats-py connection (CLI, tests, provisioning)."""
    options = connect_options(settings, name=name)
    # The CLI should fail fast on a wrong URL instead of retrying forever.
    options["max_reconnect_attempts"] = 60
    options["allow_reconnect"] = True
    # nats-py logs every failed reconnect attempt with a traceback; a failed request already
    # raises where it was made, so the CLI stays readable while NATS restarts.
    options.setdefault("error_cb", _ignore)
    return await nats.connect(**options)


async def _ignore(exc: Exception) -> None:
    return None
