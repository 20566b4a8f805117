"""bus/connect.py: the mesh reaches a NATS server that requires TLS with a private CA and a
client certificate (mutual TLS), through both its raw client and a service's broker."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest

from bus.connect import broker_options, connect
from bus.ops.embedded import EmbeddedNats
from bus.ops.settings import MeshSettings
from bus.runtime import Agent, Delivery
from contracts.releases import ReleaseProposed


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    """A private CA, a server certificate for 127.0.0.1 and a client certificate, all signed by it."""
    d = tmp_path / "pki"
    d.mkdir()
    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=mesh-test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        cwd=d,
    )
    for name, extra in (("server", "subjectAltName=IP:127.0.0.1"), ("client", "extendedKeyUsage=clientAuth")):
        openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN={name}",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            cwd=d,
        )
        (d / f"{name}.ext").write_text(extra + "\n")
        openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            f"{name}.ext",
            "-out",
            f"{name}.pem",
            cwd=d,
        )
    return d


async def test_services_and_clients_connect_with_mutual_tls(pki: Path, tmp_path: Path):
    """With MESH_NATS_TLS_CA/CERT/KEY a service consumes and the CLI's client publishes over
    TLS; without the client certificate the server turns the client away."""
    server = EmbeddedNats(
        store_dir=tmp_path / "nats",
        extra_args=[
            "--tls",
            "--tlscert",
            str(pki / "server.pem"),
            "--tlskey",
            str(pki / "server.key"),
            "--tlsverify",
            "--tlscacert",
            str(pki / "ca.pem"),
        ],
    )
    await asyncio.to_thread(server.start)
    try:
        url = f"tls://127.0.0.1:{server.port}"
        settings = MeshSettings(
            nats_url=url,
            namespace="tls",
            nats_tls_ca=pki / "ca.pem",
            nats_tls_cert=pki / "client.pem",
            nats_tls_key=pki / "client.key",
        )
        assert "security" in broker_options(settings, name="x")
        seen: list[str] = []
        agent = Agent("tls-reader", settings=settings)

        @agent.consumes(
            stream=settings.subjects.events_stream, subject=settings.subjects.release_proposed, model=ReleaseProposed
        )
        async def handle(event: ReleaseProposed, delivery: Delivery) -> None:
            seen.append(event.release_id)

        async with agent.running():
            nc = await connect(settings, name="tls-client")
            body = {"release_id": "rel-tls", "service": "svc", "version": "1"}
            await nc.jetstream().publish(settings.subjects.release_proposed, json.dumps(body).encode())
            await nc.close()
            for _ in range(50):
                if seen:
                    break
                await asyncio.sleep(0.1)
        assert seen == ["rel-tls"]

        no_cert = MeshSettings(nats_url=url, namespace="tls", nats_tls_ca=pki / "ca.pem")
        with pytest.raises(Exception):  # noqa: B017 - the handshake fails; nats-py's error type varies
            await asyncio.wait_for(_connect_once(no_cert), timeout=10)
    finally:
        await asyncio.to_thread(server.stop)


async def _connect_once(settings: MeshSettings):
    import nats

    from bus.connect import connect_options

    options = connect_options(settings, name="no-cert")
    options.update(allow_reconnect=False, max_reconnect_attempts=0, error_cb=_ignore)
    return await nats.connect(**options)


async def _ignore(exc: Exception) -> None:
    return None
