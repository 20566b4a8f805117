"""How every process connects to NATS: the same options everywhere, from the settings."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import nats
from nats.aio.client import Client

from bus.errors import MeshError, NatsUnreachable
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
    """nats-py's option for a credential file: an nkey seed (`SU…`) or a .creds file (JWT + seed).

    The file is checked here, because nats-py reads it only when the server asks, and then
    fails with a traceback (a bad seed) or never returns (a .creds file without a JWT)."""
    try:
        text = path.read_bytes().decode(errors="replace")  # as nats-py reads it: no newline translation
    except OSError as exc:
        raise MeshError(f"MESH_NATS_CREDENTIALS: cannot read {path}: {exc.strerror}") from None
    if text.lstrip().startswith("SU"):
        if not _valid_seed(text.strip()):
            raise MeshError(
                f"MESH_NATS_CREDENTIALS: {path} starts like an nkey seed (SU…) but is not a valid one; "
                "use the file `mesh identities generate` wrote, whole"
            )
        return "nkeys_seed"
    jwt, seed = _creds_section(text, "NATS USER JWT"), _creds_section(text, "USER NKEY SEED")
    if jwt and seed and (jwt.endswith("\r") or seed.endswith("\r")):
        # nats-py reads each line up to its \n: the \r stays, and the seed no longer decodes
        raise MeshError(
            f"MESH_NATS_CREDENTIALS: {path} has Windows line endings (CRLF), which nats-py cannot read; "
            "convert it to LF (dos2unix) or write it again with `nsc generate creds`"
        )
    if not jwt or not seed or not _valid_seed(seed):
        raise MeshError(
            f"MESH_NATS_CREDENTIALS: {path} is neither an nkey seed (one line, SU…) nor a .creds file "
            "(a user JWT and its nkey seed, between -----BEGIN … lines, as `nsc generate creds` writes)"
        )
    return "user_credentials"


def _creds_section(text: str, name: str) -> str | None:
    """The first line after `-----BEGIN <name>-----`, as nats-py reads it (up to its newline, a
    carriage return kept); None when absent."""
    lines = text.split("\n")
    for i, line in enumerate(lines[:-1]):
        if f"BEGIN {name}" in line:
            return lines[i + 1] if lines[i + 1].strip() else None
    return None


def _valid_seed(seed: str) -> bool:
    import nkeys

    try:
        nkeys.from_seed(bytearray(seed.encode())).wipe()
    except Exception:  # noqa: BLE001 - nkeys raises several kinds for a malformed seed
        return False
    return True


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
    """A raw nats-py connection (CLI, tests, provisioning).

    Fails fast: each server is tried twice, 2 s each, then `NatsUnreachable` says which URL, why
    (refused, no answer, credential refused) and what to check. Once connected it rides out a
    NATS restart (60 reconnects). Services reconnect for ever instead (`broker_options`).
    """
    options = connect_options(settings, name=name)
    seen: list[Exception] = []

    # nats-py logs every failed attempt with a traceback; keep the last one for our own message
    async def remember(exc: Exception) -> None:
        seen[:] = [exc]

    options.update(error_cb=remember, allow_reconnect=False, max_reconnect_attempts=1, connect_timeout=2)
    try:
        nc = await nats.connect(**options)
    except (OSError, TimeoutError, nats.errors.Error) as exc:
        raise NatsUnreachable(_unreachable(settings, seen[-1] if seen else exc)) from None
    # nats-py reads these on each disconnect: from now on, ride out a NATS restart
    nc.options.update(allow_reconnect=True, max_reconnect_attempts=60, connect_timeout=5)
    return nc


def _unreachable(settings: BusSettings, exc: Exception) -> str:
    where = redact_nats_url(settings.nats_url)
    if "authorization violation" in str(exc).lower():
        if settings.nats_credentials:
            return (
                f"NATS at {where} refused the credential {settings.nats_credentials} (authorization violation); "
                "check MESH_NATS_CREDENTIALS, or that the server includes its auth.conf"
            )
        if "@" in settings.nats_url:
            return f"NATS at {where} refused the user or token in MESH_NATS_URL (authorization violation)"
        return (
            f"NATS at {where} requires a credential and none was given (authorization violation); "
            "set MESH_NATS_CREDENTIALS, or run the command in the folder of the `mesh up` that started it"
        )
    hint = "is the mesh up? start it with `mesh up`, or set MESH_NATS_URL"
    return f"cannot reach NATS at {where} ({_reason(exc)}); {hint}"


def _reason(exc: Exception) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return "no answer within 2 s"
    if isinstance(exc, socket.gaierror):
        return "unknown host"
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or exc}"
    return str(exc) or type(exc).__name__


def redact_nats_url(url: str) -> str:
    """`nats://user:***@host:4222`: each URL of a comma-separated list with its password (or, for
    `nats://token@host`, its token) masked; URLs without credentials are returned as they are."""
    return ",".join(_redact_one_url(part) for part in url.split(","))


def _redact_one_url(url: str) -> str:
    bare = "://" not in url  # nats-py also takes `user:pass@host:4222`
    parts = urlsplit(("nats://" if bare else "") + url.strip())
    if "@" not in parts.netloc:
        return url
    userinfo, host = parts.netloc.rsplit("@", 1)
    user, has_password, _ = userinfo.partition(":")
    masked = f"{user}:***" if has_password else "***"  # a lone user part is a token in NATS
    shown = urlunsplit(parts._replace(netloc=f"{masked}@{host}"))
    return shown.removeprefix("nats://") if bare else shown
