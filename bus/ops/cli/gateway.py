"""`mesh gateway keys`: the API keys the gateway accepts, issued, listed and revoked.

Works on the keys file alone (no NATS); a running gateway reads the file again when it changes,
so each command takes effect at once.
"""

from __future__ import annotations

import json
from fnmatch import fnmatchcase
from typing import Annotated

import typer
from rich.console import Console

from bus.errors import MeshError
from bus.ops.arguments import BadUsage
from bus.ops.cli.render import folded_table
from bus.ops.run_file import RUN_FILE
from bus.ops.settings import MeshSettings
from contracts.catalog import CONTRACTS
from services.gateway.api_keys import (
    DEFAULT_SCOPES,
    ApiKey,
    KeyFileError,
    KeyNameTaken,
    check_name,
    check_scopes,
    issue_key,
    list_keys,
    revoke_key,
)
from services.gateway.approvals import DECIDE_APPROVALS, READ_APPROVALS
from services.gateway.callers import READ_RELEASES, publish_scope

console = Console()
err_console = Console(stderr=True, markup=False, highlight=False, soft_wrap=True)  # paths and names as typed
# What the gateway checks today; a scope matching none of them grants nothing (likely a typo).
KNOWN_SCOPES = [
    READ_RELEASES,
    *(publish_scope(name) for name, c in sorted(CONTRACTS.items()) if c.publishable),
    READ_APPROVALS,
    DECIDE_APPROVALS,
]

gateway = typer.Typer(
    name="gateway",
    help="The API gateway's clients. Keys live in MESH_HOME/gateway/api-keys.json (or "
    "MESH_GATEWAY_API_KEYS_FILE), stored hashed; a running gateway picks up changes at once.",
    no_args_is_help=True,
)
keys = typer.Typer(
    name="keys",
    help="API keys: one per client, with the scopes it may use. Clients send `Authorization: Bearer <key>` "
    "(or `X-API-Key: <key>`).",
    no_args_is_help=True,
)
gateway.add_typer(keys)


def register(app: typer.Typer) -> None:
    app.add_typer(gateway)


@keys.command("add")
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The client's name, e.g. ci-pipeline; it shows as `key:<name>`.")],
    scopes: Annotated[
        list[str] | None,
        typer.Option(
            "--scope",
            help="A scope the key grants (repeat for more); `*` is a wildcard, as in events:*:publish. "
            f"Known: {', '.join(KNOWN_SCOPES)}. Default: {' and '.join(DEFAULT_SCOPES)}.",
        ),
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Replace the client's live key (the old one stops working).")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON object: the key (its only showing) and its record.")
    ] = False,
) -> None:
    """Issue a key for a client and print it, once: only its hash is kept.

    Standard output holds the key alone (the rest goes to stderr), so a script can take it:
    `KEY=$(mesh gateway keys add ci)`; with --json, one object with the key and its record.

    Example: `mesh gateway keys add ci --scope events:release.proposed:publish --scope releases:read`
    """
    settings: MeshSettings = ctx.obj
    try:
        check_name(name)
        granted = check_scopes(scopes or DEFAULT_SCOPES)
    except ValueError as exc:
        raise BadUsage(str(exc)) from None
    for scope in granted:
        if not any(fnmatchcase(known, scope) for known in KNOWN_SCOPES):
            err_console.print(f"warning: scope {scope!r} matches none the gateway knows ({', '.join(KNOWN_SCOPES)})")
    path = settings.api_keys_path
    try:
        key = issue_key(path, name, granted, replace=replace)
    except KeyNameTaken as exc:
        raise MeshError(f"{exc}: add --replace, or `mesh gateway keys revoke {name}` first") from None
    except KeyFileError as exc:
        raise MeshError(str(exc)) from None
    if as_json:
        record = next(k for k in list_keys(path) if k.name == name)
        typer.echo(json.dumps({**record.model_dump(mode="json"), "key": key}, indent=2))
        return
    err_console.print(f"API key for {name} ({', '.join(granted)}), in {path}. Shown once, store it now:")
    typer.echo(key)
    err_console.print(
        f'Try it:\n  curl -H "Authorization: Bearer {key}" -H "Content-Type: application/json" '
        f'-d @contracts/samples/release_clean.json "{_gateway_url(settings)}/v1/events/release.proposed?wait=30"'
    )


@keys.command("list")
def list_(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array of the keys.")] = False,
) -> None:
    """List the keys: client, key id, scopes, when created and revoked. Never a secret or hash.

    Example: `mesh gateway keys list --json`
    """
    settings: MeshSettings = ctx.obj
    try:
        found = list_keys(settings.api_keys_path)
    except KeyFileError as exc:
        raise MeshError(str(exc)) from None
    if as_json:
        typer.echo(json.dumps([key.model_dump(mode="json") for key in found], indent=2))
        return
    if not found:
        console.print(
            f"no API keys in {settings.api_keys_path}; add one with `mesh gateway keys add NAME`", markup=False
        )
        return
    table = folded_table("client", "key id", "scopes", "created", "state")
    for key in found:
        table.add_row(key.name, key.key_id, ", ".join(key.scopes), _when(key.created_at), _state(key))
    console.print(table, highlight=False)


@keys.command("revoke")
def revoke(ctx: typer.Context, name: Annotated[str, typer.Argument(help="The client whose key to revoke.")]) -> None:
    """Revoke a client's key: the gateway refuses it from its next request on.

    The record stays, marked revoked; `keys add NAME` issues the client a new key.
    Example: `mesh gateway keys revoke ci`
    """
    settings: MeshSettings = ctx.obj
    try:
        revoked = revoke_key(settings.api_keys_path, name)
    except KeyFileError as exc:
        raise MeshError(str(exc)) from None
    if not revoked:
        raise MeshError(f"no live key for {name!r}; `mesh gateway keys list` shows the keys")
    console.print(f"revoked the API key of {name}")


def _state(key: ApiKey) -> str:
    return f"revoked {_when(key.revoked_at)}" if key.revoked_at else "live"


def _when(moment) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _gateway_url(settings: MeshSettings) -> str:
    """The gateway of the mesh running here (`mesh up`'s run file), or where one listens by default."""
    try:
        services = json.loads((settings.home / RUN_FILE).read_text()).get("services") or {}
        return next(s["url"].rstrip("/") for s in services.values() if s.get("service") == "gateway" and s.get("url"))
    except (OSError, ValueError, AttributeError, TypeError, KeyError, StopIteration):
        return f"http://127.0.0.1:{settings.http_port}"
