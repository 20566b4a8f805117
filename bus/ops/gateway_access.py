"""The key `mesh up` and `mesh demo` use to call their own gateway, and the `curl` they print.

The key is an ordinary API key named `local` (`mesh gateway keys list` shows it), kept in
`$MESH_HOME/gateway/local.key` (mode 0600) so a user can type
`curl -H "Authorization: Bearer $(cat .mesh/gateway/local.key)" …`. It is made once and kept;
deleting the file, or revoking `local`, makes a new one at the next `mesh up`.
"""

from __future__ import annotations

import os
from pathlib import Path

from bus.ops.settings import MeshSettings
from services.gateway.api_keys import DEFAULT_SCOPES, ApiKeyStore, issue_key

LOCAL = "local"
SAMPLE = "contracts/samples/release_clean.json"


def local_key(settings: MeshSettings) -> tuple[str, Path]:
    """The local key and the file that holds it, issuing a new one when it is missing or no
    longer accepted (revoked, or the keys file was replaced)."""
    path = settings.gateway_folder / "local.key"
    if path.exists():
        key = path.read_text().strip()
        if ApiKeyStore(settings.api_keys_path).find(key) is not None:
            return key, path
    key = issue_key(settings.api_keys_path, LOCAL, DEFAULT_SCOPES, replace=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(key + "\n")
    path.with_suffix(".tmp").replace(path)
    return key, path


def curl_line(gateway_url: str, key_file: Path, *, sample: str = SAMPLE, wait: int = 30) -> str:
    """What a user types to propose a release through the gateway and wait for its outcome."""
    return (
        f'curl -sS -H "Authorization: Bearer $(cat {key_file})" -H "Content-Type: application/json" '
        f'--data @{sample} "{gateway_url}/v1/events/release.proposed?wait={wait}"'
    )
