"""The HTTP edges of the services as a client meets them: unknown paths, documented statuses,
the API docs page — real service processes, real HTTP."""

from __future__ import annotations

import re
import uuid
from urllib.parse import urljoin

import httpx
import pytest

from bus.asyncapi import asyncapi_document
from bus.ops.identities import generate_for_mesh
from bus.ops.launcher import start_mesh
from bus.ops.settings import MeshSettings
from services.index import mesh_agents
from tests.e2e.support import eventually


@pytest.fixture(scope="module")
def mesh(nats_url, gatekeeper, tmp_path_factory):
    """A registry and a reviewer, started once for the module."""
    settings = MeshSettings(nats_url=nats_url, namespace=f"t{uuid.uuid4().hex[:10]}")
    home = tmp_path_factory.mktemp("http-edges")
    identities = gatekeeper.admit(generate_for_mesh(settings, home / "identities")) if gatekeeper else None
    names = ["registry", "security"]
    running = start_mesh(settings, names=names, home=home, embedded=False, identities=identities)
    yield running
    running.stop()


@pytest.fixture
def urls(mesh) -> dict[str, str]:
    """{service: base URL}"""
    return {s.name: s.url for s in mesh.services}


async def request(method: str, url: str, **kwargs) -> httpx.Response:
    async with httpx.AsyncClient(timeout=5) as http:
        return await http.request(method, url, **kwargs)


@pytest.mark.parametrize("service", ["security", "registry"])
@pytest.mark.parametrize("path", ["/nope", "/agents/security/card/extra", "/.well-known/agent.json"])
async def test_an_unknown_path_is_a_404_problem(urls, service, path):
    """A path a service does not serve is answered 404 with an RFC 9457 problem saying so."""
    response = await request("GET", urls[service] + path)

    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == 404 and body["title"] == "Not found"
    assert path in body["detail"], body


async def test_a_reviewer_404_names_the_paths_it_serves(urls):
    """The reviewer's 404 lists its routes, so a typo is one look away from the right path."""
    detail = (await request("GET", urls["security"] + "/healthy")).json()["detail"]

    assert "/healthz" in detail and "/.well-known/agent-card.json" in detail


async def test_the_registry_documents_exactly_the_statuses_it_sends(urls):
    """Every status the registry answers on its documented routes is in its OpenAPI document for
    that route, every error status documented is one it really sends, and no route lists the
    422 it never sends (bad input is a 400)."""
    registry = urls["registry"]

    async def registered():
        return (await request("GET", f"{registry}/agents/security")).status_code == 200

    assert await eventually(registered, timeout=15)
    etag = (await request("GET", f"{registry}/agents/security/card")).headers["etag"]
    own_etag = (await request("GET", f"{registry}/.well-known/agent-card.json")).headers["etag"]
    asyncapi_etag = (await request("GET", f"{registry}/asyncapi.json")).headers["etag"]
    cases = [  # (route, url, headers, status it answers)
        ("/agents", "/agents", {}, 200),
        ("/agents", "/agents?colour=blue", {}, 400),
        ("/agents", "/agents?skill=a%20b", {}, 400),
        ("/agents/{name}", "/agents/security", {}, 200),
        ("/agents/{name}", "/agents/bad%20name", {}, 400),
        ("/agents/{name}", "/agents/nobody", {}, 404),
        ("/agents/{name}/card", "/agents/security/card", {}, 200),
        ("/agents/{name}/card", "/agents/security/card", {"If-None-Match": etag}, 304),
        ("/agents/{name}/card", "/agents/bad%20name/card", {}, 400),
        ("/agents/{name}/card", "/agents/nobody/card", {}, 404),
        ("/.well-known/agent-card.json", "/.well-known/agent-card.json", {}, 200),
        ("/.well-known/agent-card.json", "/.well-known/agent-card.json", {"If-None-Match": own_etag}, 304),
        ("/asyncapi.json", "/asyncapi.json", {}, 200),
        ("/asyncapi.json", "/asyncapi.json", {"If-None-Match": asyncapi_etag}, 304),
    ]
    spec = (await request("GET", f"{registry}/openapi.json")).json()
    documented = {path: set(ops["get"]["responses"]) for path, ops in spec["paths"].items()}

    sent: dict[str, set[str]] = {}
    for route, url, headers, status in cases:
        response = await request("GET", registry + url, headers=headers)
        assert response.status_code == status, (url, response.text)
        assert str(status) in documented[route], f"{route} answers {status} but documents {sorted(documented[route])}"
        if status >= 400:
            assert response.headers["content-type"].startswith("application/problem+json")
        sent.setdefault(route, set()).add(str(status))

    assert set(sent) == set(documented), "a documented route is not exercised here"
    for route, statuses in documented.items():
        assert statuses == sent[route], f"{route} documents {sorted(statuses)}, sends {sorted(sent[route])}"
    problem = spec["paths"]["/agents"]["get"]["responses"]["400"]["content"]["application/problem+json"]
    assert problem["schema"] == {"$ref": "#/components/schemas/Problem"}
    assert "Problem" in spec["components"]["schemas"]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_the_api_docs_load_nothing_from_elsewhere(urls, page):
    """The docs page refers only to the registry's own URLs (no CDN: it works offline), and each
    of them answers 200."""
    registry = urls["registry"]
    html = (await request("GET", registry + page)).text
    # src= and href= (scripts, styles, icon), spec-url= (ReDoc) and `url: '...'` (Swagger UI's config)
    referenced = set(re.findall(r"""(?:src|href|spec-url)\s*=\s*["']([^"']+)["']""", html))
    referenced |= set(re.findall(r"""\burl\s*:\s*["']([^"']+)["']""", html))

    assert referenced, html
    assert not [u for u in referenced if re.match(r"^(https?:)?//", u)], referenced
    assert "/openapi.json" in referenced
    for url in referenced:
        response = await request("GET", urljoin(registry + page, url))
        assert response.status_code == 200, url


async def test_the_registry_serves_the_mesh_asyncapi_document(mesh, urls, node_tools, tmp_path):
    """GET /asyncapi.json is the document `mesh asyncapi` writes for the same mesh, and the
    official parser accepts it."""
    response = await request("GET", urls["registry"] + "/asyncapi.json")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    served = response.json()
    expected = asyncapi_document(mesh_agents(mesh.settings), mesh.settings)
    for part in ("asyncapi", "channels", "operations", "components"):
        assert served[part] == expected[part], part
    path = tmp_path / "served.json"
    path.write_text(response.text)
    parsed = node_tools.run("asyncapi.mjs", str(path))
    assert parsed["errors"] == [], parsed["errors"]
