"""Who is calling: one credential per request, an API key or a bearer JWT, turned into a Caller.

    Authorization: Bearer mk_<key id>_<secret>      an API key (services/gateway/api_keys.py)
    X-API-Key: mk_<key id>_<secret>                 the same, for clients that cannot set Bearer
    Authorization: Bearer <JWT>                     when a JWKS is configured (jwt_bearer.py)

Anything else raises Unauthenticated, whose `detail` tells the caller what is wrong and what to
send; the HTTP layer answers 401 with it. No detail and no log line carries the credential.
What the caller may do (scopes) is the caller's to check: `Caller.allows`.
"""

from __future__ import annotations

from collections.abc import Mapping

from services.gateway.api_keys import KEY_PREFIX, ApiKeyStore
from services.gateway.callers import Caller
from services.gateway.jwt_bearer import JwtVerifier, TokenRejected
from services.gateway.settings import GatewaySettings

HOW_TO_SEND = "send `Authorization: Bearer <API key>` or `X-API-Key: <API key>`"


class Unauthenticated(Exception):
    """No valid credential: answered 401 with `WWW-Authenticate: Bearer` and `detail`, one
    sentence saying what is wrong and what to send."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class Authenticator:
    """Finds the caller of a request from its headers (names lower-case)."""

    def __init__(
        self, settings: GatewaySettings, *, keys: ApiKeyStore | None = None, tokens: JwtVerifier | None = None
    ) -> None:
        self.keys = keys or ApiKeyStore(settings.api_keys_path)
        self.tokens = tokens or JwtVerifier.from_settings(settings)
        self.how_to_send = HOW_TO_SEND + (" or `Authorization: Bearer <JWT>`" if self.tokens else "")

    async def authenticate(self, headers: Mapping[str, str]) -> Caller:
        """The caller the request's credential proves, or Unauthenticated."""
        credential = self._credential(headers)
        if credential.startswith(KEY_PREFIX):
            return self._api_key_caller(credential)
        if self.tokens is None:
            raise Unauthenticated(f"The credential is not an API key (mk_…); {self.how_to_send}.")
        try:
            return await self.tokens.verify(credential)
        except TokenRejected as exc:
            raise Unauthenticated(str(exc)) from None

    def _credential(self, headers: Mapping[str, str]) -> str:
        authorization = headers.get("authorization", "").strip()
        api_key = headers.get("x-api-key", "").strip()
        if authorization and api_key:
            raise Unauthenticated("Send one credential, not both `Authorization` and `X-API-Key`.")
        if api_key:
            if not api_key.startswith(KEY_PREFIX):
                raise Unauthenticated("`X-API-Key` takes an API key (mk_…); send a JWT as `Authorization: Bearer`.")
            return api_key
        if not authorization:
            raise Unauthenticated(f"No credentials; {self.how_to_send}.")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated(f"`Authorization` must use the Bearer scheme; {self.how_to_send}.")
        return token

    def _api_key_caller(self, token: str) -> Caller:
        # Read the keys file (one stat, a read only when it changed) on the event loop: cheaper
        # than a hop to a thread.
        key = self.keys.find(token)
        if key is None:
            raise Unauthenticated(
                "The API key is not valid (unknown or mistyped); use the key `mesh gateway keys add` printed."
            )
        if key.revoked:
            raise Unauthenticated(f"The API key for {key.name!r} has been revoked; ask the operator for a new one.")
        return Caller(id=f"key:{key.name}", scopes=frozenset(key.scopes))
