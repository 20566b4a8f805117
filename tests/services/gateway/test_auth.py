"""services/gateway/auth.py: the credential of a request, an API key or a bearer JWT checked
against a JWKS served over real HTTP, becomes a Caller — or a 401 detail that says what to send
and never repeats the credential."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from services.gateway.api_keys import issue_key, revoke_key
from services.gateway.auth import Authenticator, Unauthenticated
from services.gateway.settings import GatewaySettings

ISSUER = "https://idp.example.test/"
AUDIENCE = "agent-mesh-gateway"


# --- a JWKS endpoint -------------------------------------------------------------------------


@dataclass
class SigningKey:
    kid: str
    alg: str
    private: object

    def jwk(self) -> dict:
        public = self.private.public_key()
        to_jwk = {"RS256": RSAAlgorithm, "ES256": ECAlgorithm, "EdDSA": OKPAlgorithm}[self.alg].to_jwk
        return {**to_jwk(public, as_dict=True), "kid": self.kid, "alg": self.alg, "use": "sig"}

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


@dataclass
class Provider:
    """An identity provider: its JWKS URL, its keys by algorithm, how often the JWKS was fetched."""

    url: str
    keys: dict[str, SigningKey]
    fetches: list[str] = field(default_factory=list)

    def token(self, alg: str = "RS256", *, kid: str | None = None, signer: object = None, **claims) -> str:
        """A token signed by the key for `alg` (or `signer`), with sensible claims unless overridden."""
        key = self.keys[alg]
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "user-7", "iat": now, "exp": now + 300, **claims}
        body = {name: value for name, value in body.items() if value is not None}
        return jwt.encode(body, signer or key.private, algorithm=alg, headers={"kid": kid or key.kid})


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    keys = {
        "RS256": SigningKey("rsa-1", "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        "ES256": SigningKey("ec-1", "ES256", ec.generate_private_key(ec.SECP256R1())),
        "EdDSA": SigningKey("ed-1", "EdDSA", ed25519.Ed25519PrivateKey.generate()),
    }
    body = json.dumps({"keys": [key.jwk() for key in keys.values()]}).encode()
    fetches: list[str] = []

    class JWKS(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fetches.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), JWKS)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield Provider(f"http://127.0.0.1:{server.server_port}/.well-known/jwks.json", keys, fetches)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def settings(tmp_path) -> GatewaySettings:
    """API keys only: no JWKS configured."""
    return GatewaySettings(home=tmp_path)


@pytest.fixture
def with_jwt(tmp_path, provider) -> Authenticator:
    settings = GatewaySettings(
        home=tmp_path,
        gateway_jwt_jwks_url=provider.url,
        gateway_jwt_issuer=ISSUER,
        gateway_jwt_audience=AUDIENCE,
    )
    return Authenticator(settings)


async def refused(auth: Authenticator, headers: dict[str, str]) -> str:
    """The 401 detail for these headers; it must not repeat any credential sent."""
    with pytest.raises(Unauthenticated) as caught:
        await auth.authenticate(headers)
    detail = caught.value.detail
    for value in headers.values():
        credential = value.removeprefix("Bearer ").strip()
        assert len(credential) < 8 or credential not in detail, "the detail echoes the credential"
    return detail


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


# --- API keys --------------------------------------------------------------------------------


async def test_a_valid_key_names_its_client_with_its_scopes(settings):
    """`Authorization: Bearer mk_…` gives the caller `key:<name>` with the scopes the key was issued."""
    key = issue_key(settings.api_keys_path, "ci-pipeline", ["events:*:publish", "releases:read"])

    caller = await Authenticator(settings).authenticate(bearer(key))

    assert caller.id == "key:ci-pipeline"
    assert caller.scopes == {"events:*:publish", "releases:read"}
    assert caller.allows("events:release.proposed:publish") and not caller.allows("admin:pause")


async def test_x_api_key_is_accepted_and_the_scheme_is_case_insensitive(settings):
    """The key works in `X-API-Key` and after `bearer` in any case."""
    key = issue_key(settings.api_keys_path, "ci")
    auth = Authenticator(settings)
    assert (await auth.authenticate({"x-api-key": key})).id == "key:ci"
    assert (await auth.authenticate({"authorization": f"BEARER {key}"})).id == "key:ci"


async def test_a_wrong_secret_or_an_unknown_key_id_is_refused_alike(settings):
    """A real key id with another secret, and an id nobody issued, get the same detail: the
    answer does not tell which key ids exist."""
    key = issue_key(settings.api_keys_path, "ci")
    key_id = key.split("_")[1]
    auth = Authenticator(settings)

    wrong_secret = await refused(auth, bearer(f"mk_{key_id}_{'A' * 43}"))
    unknown_id = await refused(auth, bearer(f"mk_{'0' * 16}_{key.split('_', 2)[2]}"))

    assert wrong_secret == unknown_id
    assert "not valid" in wrong_secret and "mesh gateway keys add" in wrong_secret


async def test_a_revoked_key_is_refused_as_revoked(settings):
    """Once revoked, the key is refused, and its holder is told it was revoked."""
    key = issue_key(settings.api_keys_path, "ci")
    revoke_key(settings.api_keys_path, "ci")
    detail = await refused(Authenticator(settings), {"x-api-key": key})
    assert "revoked" in detail


async def test_keys_added_and_revoked_while_running_take_effect_at_once(settings):
    """One Authenticator, as a running gateway holds it, accepts a key issued after it started
    and refuses one revoked after it started: no restart."""
    auth = Authenticator(settings)
    first = issue_key(settings.api_keys_path, "first")
    assert (await auth.authenticate(bearer(first))).id == "key:first"

    second = issue_key(settings.api_keys_path, "second")
    revoke_key(settings.api_keys_path, "first")

    assert (await auth.authenticate(bearer(second))).id == "key:second"
    assert "revoked" in await refused(auth, bearer(first))


async def test_no_keys_file_means_every_key_is_refused(settings):
    """A gateway with no keys file accepts no key (and does not fail)."""
    assert not settings.api_keys_path.exists()
    await refused(Authenticator(settings), bearer("mk_0123456789abcdef_" + "s" * 43))


@pytest.mark.parametrize(
    ("headers", "says"),
    [
        ({}, "No credentials"),
        ({"authorization": ""}, "No credentials"),
        ({"authorization": "Basic dXNlcjpwYXNzd29yZA=="}, "Bearer scheme"),
        ({"authorization": "Bearer"}, "Bearer scheme"),
        ({"x-api-key": "not-a-mesh-key"}, "X-API-Key` takes an API key"),
        ({"authorization": "Bearer mk_a_b", "x-api-key": "mk_a_b"}, "not both"),
        ({"authorization": "Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln"}, "not an API key"),
    ],
    ids=["none", "empty", "basic", "no-token", "x-api-key-not-a-key", "both", "jwt-without-jwks"],
)
async def test_missing_or_misplaced_credentials_say_what_to_send(settings, headers, says):
    """Each way of not sending an API key properly is a 401 naming the headers that work."""
    detail = await refused(Authenticator(settings), headers)
    assert says in detail
    if says in ("No credentials", "Bearer scheme", "not an API key"):
        assert "Authorization: Bearer <API key>" in detail and "X-API-Key" in detail


# --- bearer JWTs -----------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
async def test_a_valid_jwt_names_issuer_and_subject(with_jwt, provider, alg):
    """A token signed by one of the provider's keys (RSA, EC or Ed25519) gives `jwt:<iss>#<sub>`."""
    caller = await with_jwt.authenticate(bearer(provider.token(alg, scope="releases:read")))
    assert caller.id == f"jwt:{ISSUER}#user-7"
    assert caller.scopes == {"releases:read"}


@pytest.mark.parametrize(
    ("claims", "scopes"),
    [
        (
            {"scope": "releases:read events:release.proposed:publish"},
            {"releases:read", "events:release.proposed:publish"},
        ),
        ({"scp": ["releases:read", "events:*:publish"]}, {"releases:read"}),
        ({"scope": "* [e]vents:release.proposed:publish rel?ases:read"}, set()),
        ({"scp": "releases:read  other"}, {"releases:read", "other"}),
        ({"scope": "a", "scp": ["b"]}, {"a", "b"}),
        ({}, set()),
    ],
    ids=["scope-string", "scp-list", "wildcards", "scp-string", "both", "none"],
)
async def test_scopes_come_from_scope_and_scp(with_jwt, provider, claims, scopes):
    """`scope` is space-separated, `scp` a list (or a string, as some providers send it); a token's
    scopes are literal: one with a wildcard (`*`, `?`, `[…]`) grants nothing, as our patterns would
    otherwise read it as one (`*` alone granted every scope)."""
    caller = await with_jwt.authenticate(bearer(provider.token(**claims)))
    assert caller.scopes == scopes


async def test_the_jwks_is_fetched_once_for_many_tokens(with_jwt, provider):
    """Keys are cached: twenty verifications with known kids cost one fetch."""
    before = len(provider.fetches)
    for alg in ["RS256", "ES256", "EdDSA"] * 7:
        await with_jwt.authenticate(bearer(provider.token(alg)))
    assert len(provider.fetches) - before == 1


def _hs256_signed_with(secret: bytes, claims: dict, kid: str) -> str:
    """An HS256 token made by hand: PyJWT refuses to use a PEM public key as an HMAC secret."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = (
        f"{b64(json.dumps({'alg': 'HS256', 'typ': 'JWT', 'kid': kid}).encode())}.{b64(json.dumps(claims).encode())}"
    )
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


async def test_algorithm_confusion_and_none_are_refused(with_jwt, provider):
    """An HS256 token whose HMAC secret is the provider's public key (which anyone may fetch),
    and an unsigned `alg: none` token, are both refused for their algorithm."""
    rsa_key = provider.keys["RS256"]
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "attacker", "exp": now + 300}
    confused = _hs256_signed_with(rsa_key.public_pem(), claims, rsa_key.kid)
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": rsa_key.kid})

    assert "HS256" in await refused(with_jwt, bearer(confused))
    assert "'none'" in await refused(with_jwt, bearer(unsigned))


async def test_a_token_signed_by_another_key_is_refused(with_jwt, provider):
    """The provider's kid on a token signed with some other RSA key fails the signature check;
    a kid the provider does not publish is refused as unknown."""
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = provider.token("RS256", signer=stranger)
    unknown_kid = provider.token("RS256", kid="rsa-999", signer=stranger)

    assert "signature does not verify" in await refused(with_jwt, bearer(forged))
    assert "unknown `kid`" in await refused(with_jwt, bearer(unknown_kid))


async def test_a_token_cannot_switch_the_algorithm_of_its_key(with_jwt, provider):
    """An ES256 token carrying the RSA key's kid is refused: each key verifies one algorithm."""
    token = provider.token("ES256", kid=provider.keys["RS256"].kid)
    assert "does not match" in await refused(with_jwt, bearer(token))


@pytest.mark.parametrize(
    ("claims", "says"),
    [
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"nbf": int(time.time()) + 3600}, "not valid yet"),
        ({"iss": "https://evil.example.test/"}, f"not the one this gateway trusts ({ISSUER})"),
        ({"aud": "some-other-api"}, f"must include {AUDIENCE}"),
        ({"aud": None}, "no `aud` claim"),
        ({"exp": None}, "no `exp` claim"),
        ({"sub": None}, "no `sub` claim"),
        ({"sub": " "}, "`sub` is empty"),
    ],
    ids=["expired", "not-yet-valid", "wrong-issuer", "wrong-audience", "no-audience", "no-exp", "no-sub", "empty-sub"],
)
async def test_claims_that_do_not_hold_are_refused_by_name(with_jwt, provider, claims, says):
    """Expiry, not-before, issuer and audience are checked, and exp/sub/aud required; the detail
    names the claim that failed."""
    assert says in await refused(with_jwt, bearer(provider.token(**claims)))


async def test_an_audience_is_refused_when_none_is_configured(tmp_path, provider):
    """With no audience configured, a token meant for some audience is not taken as meant for us."""
    auth = Authenticator(GatewaySettings(home=tmp_path, gateway_jwt_jwks_url=provider.url))
    assert "audience" in await refused(auth, bearer(provider.token()))
    assert (await auth.authenticate(bearer(provider.token(aud=None)))).id == f"jwt:{ISSUER}#user-7"


async def test_garbage_bearer_tokens_are_refused_as_malformed(with_jwt):
    """A bearer token that is neither a key nor a JWT is a 401, not an error."""
    for token in ["hello", "a.b.c", "eyJhbGciOiJSUzI1NiJ9.%%%.sig"]:
        assert "well-formed JWT" in await refused(with_jwt, bearer(token))


async def test_an_unreachable_jwks_is_a_clear_refusal(tmp_path, provider):
    """When the provider's keys cannot be fetched, the token is refused saying so, promptly."""
    from socket import socket

    with socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/jwks.json"
    auth = Authenticator(GatewaySettings(home=tmp_path, gateway_jwt_jwks_url=closed))
    assert "could not be fetched" in await refused(auth, bearer(provider.token()))


async def test_api_keys_still_work_beside_jwts(with_jwt, tmp_path):
    """With a JWKS configured, `mk_` bearer tokens are still API keys."""
    key = issue_key(tmp_path / "gateway" / "api-keys.json", "ci")
    assert (await with_jwt.authenticate(bearer(key))).id == "key:ci"
