"""A .creds file with Windows line endings (CRLF), of a user the server trusts: nats-py reads its
JWT and seed lines with the `\\r`, so it cannot sign with it. `mesh publish` must then say so in
one `error:` line naming MESH_NATS_CREDENTIALS and the file, within seconds, no traceback — as it
does for every other unusable credential file (tests/bus/test_credential_files.py)."""

from __future__ import annotations

from tests.bus.test_connect_jwt import jwt_nats, mesh  # noqa: F401 - the fixture
from tests.e2e.support import SAMPLES


def test_a_crlf_creds_file_is_one_clear_line(jwt_nats):  # noqa: F811
    """Either it works (the mesh normalised the line endings) or it is refused up front."""
    creds = jwt_nats.trust.write_creds(jwt_nats.folder / "ci.creds", "ci")
    crlf = jwt_nats.folder / "ci-crlf.creds"
    crlf.write_bytes(creds.read_bytes().replace(b"\n", b"\r\n"))

    result = mesh(jwt_nats, "publish", "release.proposed", str(SAMPLES / "release_clean.json"), credentials=crlf)

    if result.returncode == 0:
        return
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: MESH_NATS_CREDENTIALS:"), result.stderr
    assert str(crlf) in lines[0]
