"""One NATS identity per service, an operator and any external publishers: nkey seeds, the
server's `authorization` block, and the table of who may do what.

Why nkey users (not JWT users under an account): the mesh runs in one account, and an nkey user
is a public key plus its permissions in the server's configuration — no operator/account
signing chain, no resolver, nothing to run beside nats-server. The seed never leaves the
machine that generated it; the server only ever sees the public key. (A JWT deployment can
take the same permissions: `mesh identities generate --print` shows them.)

Seeds are kept across runs: generating again rewrites the permissions (a service that declared
a new handler gets its new subjects) without rotating anybody's key. `--rotate` makes new ones.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import nkeys

from bus.errors import MeshError
from bus.permissions import Permissions, operator_permissions, publisher_permissions
from bus.settings import BusSettings

OPERATOR = "operator"
MANIFEST = "identities.json"  # the publishers added so far (services come from the code)
AUTHORIZATION = "auth.conf"
NAME = r"^[A-Za-z0-9_-]{1,64}$"


@dataclass(frozen=True)
class Identity:
    name: str
    kind: str  # service | operator | publisher
    seed_path: Path
    public_key: str
    permissions: Permissions


@dataclass
class Identities:
    """Every identity of one mesh (one namespace), as generated into `folder`."""

    folder: Path
    namespace: str
    members: list[Identity] = field(default_factory=list)

    def __getitem__(self, name: str) -> Identity:
        for identity in self.members:
            if identity.name == name:
                return identity
        raise KeyError(name)

    def credential(self, name: str) -> Path:
        return self[name].seed_path

    @property
    def authorization_file(self) -> Path:
        return self.folder / AUTHORIZATION

    def users(self) -> list[dict]:
        """The `users` entries of the server's `authorization` block."""
        return [{"nkey": i.public_key, "permissions": i.permissions.as_config()} for i in self.members]

    def authorization(self) -> str:
        """The server configuration block: paste it into your nats-server.conf, or `include` it."""
        return render_authorization(self.users(), comment=self._comment())

    def _comment(self) -> str:
        names = ", ".join(f"{i.name} ({i.kind})" for i in self.members)
        return (
            f"agent-mesh identities of namespace {self.namespace!r}, written by `mesh identities generate`: "
            f"regenerate rather than edit.\n{names}"
        )


def render_authorization(users: list[dict], *, comment: str = "", no_auth_user: str | None = None) -> str:
    """An `authorization { users = [...] }` block in nats-server's configuration syntax (JSON
    values are valid there; every subject is quoted, so `$JS…` is never read as a variable)."""
    lines = [f"# {line}" for line in comment.splitlines()]
    lines.append("authorization {")
    lines.append("  users = [")
    for user in users:
        lines.append(f"    {json.dumps(user)},")
    lines.append("  ]")
    lines.append("}")
    if no_auth_user:
        lines.append(f"no_auth_user: {json.dumps(no_auth_user)}")
    return "\n".join(lines) + "\n"


def generate(
    settings: BusSettings,
    folder: Path,
    *,
    services: dict[str, Permissions],
    publishers: dict[str, list[str]] | None = None,
    rotate: bool = False,
) -> Identities:
    """Write a seed per identity (mode 0600, kept unless `rotate`), the publishers' manifest and
    the server's authorization block into `folder`; return them all.

    `services` maps each service to the permissions its declarations give it
    (`Agent.permissions`); `publishers` adds external publishers to those already in the folder.
    """
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    known = {**load_publishers(folder), **(publishers or {})}
    wanted: list[tuple[str, str, Permissions]] = [
        *((name, "service", permissions) for name, permissions in services.items()),
        (OPERATOR, "operator", operator_permissions(settings)),
        *((name, "publisher", publisher_permissions(settings, name, events)) for name, events in known.items()),
    ]
    clashes = sorted({name for name, _, _ in wanted if [n for n, _, _ in wanted].count(name) > 1})
    if clashes:
        raise MeshError(f"identity names must be unique; taken twice: {', '.join(clashes)}")
    members = [
        Identity(name, kind, path, _public_key(path), permissions)
        for name, kind, permissions in wanted
        for path in [_seed(folder / f"{name}.nk", rotate=rotate)]
    ]
    identities = Identities(folder, settings.namespace, members)
    _write_private(folder / MANIFEST, json.dumps({"publishers": known}, indent=2) + "\n")
    _write_private(identities.authorization_file, identities.authorization())
    return identities


def load_publishers(folder: Path) -> dict[str, list[str]]:
    path = folder / MANIFEST
    if not path.exists():
        return {}
    try:
        return dict(json.loads(path.read_text())["publishers"])
    except (ValueError, KeyError, TypeError) as exc:
        raise MeshError(f"{path} is not an identities manifest ({exc}); move it away and generate again") from None


def _seed(path: Path, *, rotate: bool) -> Path:
    if rotate or not path.exists():
        seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
        _write_private(path, seed.decode() + "\n")
    return path


def _public_key(seed_path: Path) -> str:
    try:
        return nkeys.from_seed(bytearray(seed_path.read_bytes().strip())).public_key.decode()
    except nkeys.NkeysError as exc:
        raise MeshError(f"{seed_path} is not an nkey user seed ({exc}); delete it to generate a new one") from None


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, without a moment where others could."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(path, 0o600)  # an existing file keeps its old mode through O_CREAT


def service_permissions_of(settings: BusSettings, names: list[str]) -> dict[str, Permissions]:
    """Each named service's permissions, from its own declarations (services/index.py)."""
    from services.index import SERVICES

    return {name: SERVICES[name].load().build(settings).permissions for name in names}


def generate_for_mesh(
    settings: BusSettings,
    folder: Path,
    *,
    names: list[str] | None = None,
    publishers: dict[str, list[str]] | None = None,
    rotate: bool = False,
) -> Identities:
    """`generate` for the mesh's own services (all of them unless `names`)."""
    from services.index import SERVICES

    return generate(
        settings,
        folder,
        services=service_permissions_of(settings, names or list(SERVICES)),
        publishers=publishers,
        rotate=rotate,
    )
