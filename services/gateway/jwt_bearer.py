"""Bearer JWTs from an identity provider, verified against its published keys (JWKS).

Only asymmetric signatures count: with the provider's *public* keys in hand, accepting an HMAC
(`HS256`) token would let anyone who read the JWKS sign one (the algorithm-confusion attack),
and `none` is no signature at all. Each key is bound to one algorithm (its JWK `alg`, or the one
its type implies), so a token cannot pick another. `exp`, `iss` and `sub` are required (the
caller id is `jwt:<iss>#<sub>`); the issuer and audience are checked when configured.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import jwt
import structlog
from jwt import PyJWKClient

from services.gateway.callers import Caller
from services.gateway.settings import GatewaySettings

ASYMMETRIC = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
CLOCK_SKEW_SECONDS = 30.0  # the provider's clock and ours may differ by this much
JWKS_TIMEOUT_SECONDS = 5.0  # a request waits this long at most for the provider's keys

log = structlog.get_logger(__name__)


class TokenRejected(ValueError):
    """The token does not prove who is calling; the message says why, for the caller, and
    never contains the token."""


class JwtVerifier:
    """Checks bearer JWTs against one provider's JWKS and names their caller."""

    def __init__(
        self,
        jwks_url: str,
        *,
        issuer: str | None = None,
        audience: str | None = None,
        leeway_seconds: float = CLOCK_SKEW_SECONDS,
        jwks: PyJWKClient | None = None,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.leeway_seconds = leeway_seconds
        # Keeps the key set 5 minutes; an unknown `kid` (a rotated key) fetches it again, at
        # most every 30 s, so tokens with made-up kids cannot make us hammer the provider.
        self.jwks = jwks or PyJWKClient(jwks_url, lifespan=300, cooldown_duration=30, timeout=JWKS_TIMEOUT_SECONDS)

    @classmethod
    def from_settings(cls, settings: GatewaySettings) -> JwtVerifier | None:
        """The verifier the settings ask for; None when no JWKS URL is configured."""
        if not settings.gateway_jwt_jwks_url:
            return None
        return cls(
            settings.gateway_jwt_jwks_url, issuer=settings.gateway_jwt_issuer, audience=settings.gateway_jwt_audience
        )

    async def verify(self, token: str) -> Caller:
        """The caller this token proves, or TokenRejected saying what is wrong with it."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenRejected("The bearer token is neither an API key (mk_…) nor a well-formed JWT.") from None
        alg = header.get("alg")
        if alg not in ASYMMETRIC:
            raise TokenRejected(
                f"The token's algorithm {str(alg)[:20]!r} is not accepted; tokens must be signed with one of "
                f"{', '.join(ASYMMETRIC)}."
            )
        if not header.get("kid"):
            raise TokenRejected("The token's header has no `kid` naming the provider's key that signed it.")
        key = await self._signing_key(header["kid"])
        claims = self._decode(token, key)
        if not str(claims["sub"]).strip():
            raise TokenRejected("The token's `sub` is empty: it names no caller.")
        scopes = scopes_of(claims)
        return Caller(id=f"jwt:{claims['iss']}#{claims['sub']}", scopes=scopes)

    async def _signing_key(self, kid: str) -> jwt.PyJWK:
        try:
            # PyJWKClient fetches over blocking HTTP when its cache misses: never on the event loop
            return await asyncio.to_thread(self.jwks.get_signing_key, kid)
        except jwt.PyJWKClientConnectionError as exc:
            log.error("gateway.jwks_unreachable", url=self.jwks.uri, why=str(exc))
            raise TokenRejected(
                "The identity provider's keys could not be fetched to check the token; try again shortly."
            ) from None
        except jwt.PyJWKClientError:
            raise TokenRejected(
                "The token was signed with a key the identity provider does not publish (unknown `kid`)."
            ) from None
        except jwt.PyJWTError as exc:  # the JWKS itself is unusable: the provider's problem, or ours
            log.error("gateway.jwks_unusable", url=self.jwks.uri, why=str(exc))
            raise TokenRejected("The identity provider's keys are unusable; the token cannot be checked.") from None

    def _decode(self, token: str, key: jwt.PyJWK) -> dict[str, Any]:
        required = ["exp", "iss", "sub", *(["aud"] if self.audience else [])]
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=list(ASYMMETRIC),
                issuer=self.issuer,
                audience=self.audience,
                leeway=self.leeway_seconds,
                options={"require": required},
            )
        except jwt.PyJWTError as exc:
            raise TokenRejected(self._explain(exc)) from None
        if not isinstance(claims["iss"], str):
            raise TokenRejected("The token's `iss` claim is not a string.")
        return claims

    def _explain(self, exc: jwt.PyJWTError) -> str:
        match exc:
            case jwt.ExpiredSignatureError():
                return "The token has expired; get a new one from the identity provider."
            case jwt.ImmatureSignatureError():
                return "The token is not valid yet (`nbf` or `iat` in the future); check the issuer's clock."
            case jwt.MissingRequiredClaimError():
                return f"The token has no `{exc.claim}` claim, which this gateway requires."
            case jwt.InvalidIssuerError():
                return f"The token's issuer is not the one this gateway trusts ({self.issuer})."
            case jwt.InvalidAudienceError() if self.audience is None:
                log.warning("gateway.jwt_audience_unset", hint="set MESH_GATEWAY_JWT_AUDIENCE to accept tokens")
                return "The token names an audience, and this gateway has none configured to accept it."
            case jwt.InvalidAudienceError():
                return f"The token is not meant for this gateway (its audience must include {self.audience})."
            case jwt.InvalidSignatureError():
                return "The token's signature does not verify with the identity provider's key."
            case jwt.InvalidAlgorithmError():
                return "The token's algorithm does not match the identity provider's key for its `kid`."
            case jwt.DecodeError():
                return "The bearer token is not a well-formed JWT."
            case _:
                return f"The token is not valid ({exc})."


LITERAL_SCOPE = re.compile(r"[A-Za-z0-9_.-]+(?::[A-Za-z0-9_.-]+)*")


def scopes_of(claims: dict[str, Any]) -> frozenset[str]:
    """The scopes a token grants: `scope` (space-separated, RFC 8693/9068) and `scp` (a list, or
    a space-separated string as some providers send it)."""
    found: set[str] = set()
    for claim in ("scope", "scp"):
        value = claims.get(claim)
        if isinstance(value, str):
            found.update(value.split())
        elif isinstance(value, list):
            found.update(item for item in value if isinstance(item, str))
    # Literal scopes only: Caller.allows treats `*`, `?` and `[` in a granted scope as wildcards,
    # and a token's issuer did not mean `[e]vents:…` or `*` as a pattern over our scope names.
    return frozenset(scope for scope in found if LITERAL_SCOPE.fullmatch(scope))
