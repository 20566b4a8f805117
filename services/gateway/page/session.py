"""The page's session: the pasted credential in a cookie, and the CSRF tokens its forms carry.

    cookie `mesh_approvals`         the API key or JWT itself; HttpOnly, SameSite=Strict, path
                                    `/approvals`, Secure over https, for `SESSION_SECONDS`
    form field `csrf` (signed in)   HMAC-SHA256 keyed by that credential: only a page rendered for
                                    it knows the token, every replica computes the same one, and
                                    it is worthless without the cookie
    cookie `mesh_approvals_sign_in` a random nonce the sign-in form repeats in its field `nonce`
                                    (double submit), so no other site can sign a browser in with
                                    the attacker's key

The credential goes nowhere else: not in a URL, a log line or a page.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from urllib.parse import parse_qsl

from fastapi import Request, Response

from services.gateway.bodies import read_body
from services.gateway.door import Refusal

PATH = "/approvals"
COOKIE = "mesh_approvals"
SIGN_IN_COOKIE = "mesh_approvals_sign_in"
SESSION_SECONDS = 8 * 3600  # a working day; a JWT's own expiry still applies
FORM_LIMIT = 16 * 1024
# What an API key (mk_<hex>_<urlsafe base64>) or a JWT (base64url, dots) can hold, and nothing a
# cookie or a header could be confused by (spaces, `;`, `,`, quotes, control characters).
CREDENTIAL = re.compile(r"^[A-Za-z0-9._~+/=-]{1,4000}$")
_CSRF_LABEL = b"agent-mesh approval page: csrf"


def credential_of(request: Request) -> str | None:
    """The credential the browser sent, if it is one that could be valid."""
    value = request.cookies.get(COOKIE)
    return value if value and CREDENTIAL.match(value) else None


def bearer(credential: str) -> dict[str, str]:
    """The headers the door reads, holding only this credential."""
    return {"authorization": f"Bearer {credential}"}


def clean_credential(pasted: str) -> str | None:
    """What was pasted, less surrounding space and a `Bearer ` someone copied along; None when it
    cannot be a credential at all."""
    value = pasted.strip()
    if value[:7].lower() == "bearer ":
        value = value[7:].strip()
    return value if CREDENTIAL.match(value) else None


def secure(request: Request) -> bool:
    return request.url.scheme == "https"


def keep_credential(response: Response, request: Request, credential: str) -> None:
    response.set_cookie(
        COOKIE,
        credential,
        max_age=SESSION_SECONDS,
        path=PATH,
        httponly=True,
        samesite="strict",
        secure=secure(request),
    )


def forget_credential(response: Response, request: Request) -> None:
    response.delete_cookie(COOKIE, path=PATH, httponly=True, samesite="strict", secure=secure(request))


def csrf_token(credential: str) -> str:
    """The token every form of a page rendered for `credential` carries."""
    return hmac.new(credential.encode(), _CSRF_LABEL, hashlib.sha256).hexdigest()


def csrf_matches(credential: str, sent: str | None) -> bool:
    return bool(sent) and hmac.compare_digest(csrf_token(credential), sent or "")


def sign_in_nonce(request: Request) -> str:
    """The nonce of this browser's sign-in form: the one its cookie holds, else a new one."""
    current = request.cookies.get(SIGN_IN_COOKIE, "")
    return current if re.fullmatch(r"[A-Za-z0-9_-]{43}", current) else secrets.token_urlsafe(32)


def keep_sign_in_nonce(response: Response, request: Request, nonce: str) -> None:
    response.set_cookie(
        SIGN_IN_COOKIE, nonce, max_age=3600, path=PATH, httponly=True, samesite="strict", secure=secure(request)
    )


def sign_in_nonce_matches(request: Request, sent: str | None) -> bool:
    cookie = request.cookies.get(SIGN_IN_COOKIE)
    return bool(cookie and sent) and hmac.compare_digest(cookie or "", sent or "")


async def read_form(request: Request) -> dict[str, str]:
    """The fields of an urlencoded form (the last of a repeated name), at most FORM_LIMIT bytes;
    a Refusal (413, 415) otherwise."""
    media = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    if media != "application/x-www-form-urlencoded":
        raise Refusal(415, "send the page's form (application/x-www-form-urlencoded)")
    body = await read_body(request, limit=FORM_LIMIT, require_json=False)
    try:
        return dict(parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=20))
    except (UnicodeDecodeError, ValueError):
        raise Refusal(400, "the form could not be read; reload the page and send it again") from None
