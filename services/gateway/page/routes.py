"""The approval page's routes. Each one takes the session's credential through the gateway's door
(`approvals:read` to look, `approvals:decide` to decide) and answers HTML: a 401 becomes the
sign-in form, any other refusal a page that says why. The approvals themselves come from the
approvals core at `request.app.state.approvals` (list, get, decide)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import structlog
from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from contracts.approvals import MAX_NOTE_CHARS
from services.gateway.approvals import DECIDE_APPROVALS, READ_APPROVALS, STATES, ApprovalRefused
from services.gateway.callers import Caller
from services.gateway.door import Door, Refusal
from services.gateway.page import session
from services.gateway.page.render import render

READ, DECIDE = READ_APPROVALS, DECIDE_APPROVALS
PATH = session.PATH
SIGN_IN = f"{PATH}/sign-in"
# Where sign-in may send the browser back to: a page of this site, never anywhere else.
_RETURN_TO = re.compile(r"^/approvals(/[A-Za-z0-9._:~=-]{1,200})?$")  # ids: `<release token>.<digest[:12]>`
_ID_LIMIT = 200


def _log():
    return structlog.get_logger(__name__)


def approval_url(approval_id: str) -> str:
    return f"{PATH}/{quote(approval_id, safe='=:')}"


def approval_page(door: Door, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> APIRouter:
    """The page's routes under `/approvals`, admitting through `door`; `clock` says what time is left."""
    router = APIRouter(prefix=PATH, include_in_schema=False)

    def page(request: Request, template: str, status: int = 200, *, caller: Caller | None = None, **context: Any):
        credential = session.credential_of(request)
        return render(
            template,
            status,
            csrf=session.csrf_token(credential) if credential else None,
            caller_id=caller.id if caller else None,
            now=clock(),
            approval_url=approval_url,
            **context,
        )

    def to_sign_in(request: Request, return_to: str | None = None) -> Response:
        target = return_to or request.url.path
        query = f"?{urlencode({'next': target})}" if _RETURN_TO.match(target) and target != PATH else ""
        response = RedirectResponse(SIGN_IN + query, 303)
        if request.cookies.get(session.COOKIE):  # unknown, expired or revoked: drop it
            session.forget_credential(response, request)
        return response

    def refused(request: Request, refusal: Refusal, *, return_to: str | None = None) -> Response:
        if refusal.status == 401:
            return to_sign_in(request, return_to)
        headers = {k: v for k, v in refusal.headers.items() if k.lower() == "retry-after"}
        return page(request, "refused.html", refusal.status, headers=headers, refusal=refusal)

    async def admit(request: Request, scope: str) -> Caller:
        credential = session.credential_of(request)
        if credential is None:
            raise Refusal(401, "not signed in")
        return await door.admit(session.bearer(credential), scope)

    def core(request: Request):
        approvals = getattr(request.app.state, "approvals", None)
        if approvals is None:
            raise Refusal(503, "This gateway does not serve approvals yet (the approvals core is not running).")
        return approvals

    # --- signing in and out (before `/{approval_id}`, which would take their names) -----------

    @router.get("/sign-in")
    async def sign_in_form(request: Request) -> Response:
        return sign_in(request, 200, error=None)

    def sign_in(request: Request, status: int, *, error: str | None, return_to: str | None = None) -> Response:
        nonce = session.sign_in_nonce(request)
        target = return_to if return_to is not None else request.query_params.get("next", "")
        target = target if _RETURN_TO.match(target) else ""
        response = page(request, "sign_in.html", status, nonce=nonce, next=target, error=error)
        session.keep_sign_in_nonce(response, request, nonce)
        return response

    @router.post("/sign-in")
    async def sign_in_submit(request: Request) -> Response:
        try:
            form = await session.read_form(request)
        except Refusal as refusal:
            return refused(request, refusal)
        return_to = form.get("next", "")
        return_to = return_to if _RETURN_TO.match(return_to) else ""
        if not session.sign_in_nonce_matches(request, form.get("nonce")):
            error = "The sign-in form had expired or came from another page; paste your key again."
            return sign_in(request, 403, error=error, return_to=return_to)
        credential = session.clean_credential(form.get("credential", ""))
        if credential is None:
            error = "That is not an API key (mk_…) or a JWT; paste the whole credential."
            return sign_in(request, 400, error=error, return_to=return_to)
        try:
            caller = await door.identify(session.bearer(credential))
        except Refusal as refusal:
            if refusal.status != 401:
                return refused(request, refusal)
            return sign_in(request, 400, error=f"The gateway did not accept it. {refusal.detail}", return_to=return_to)
        response = RedirectResponse(return_to or PATH, 303)
        session.keep_credential(response, request, credential)
        response.delete_cookie(session.SIGN_IN_COOKIE, path=PATH)
        _log().info("gateway.approval_page_signed_in", caller=caller.id)
        return response

    @router.post("/sign-out")
    async def sign_out(request: Request) -> Response:
        credential = session.credential_of(request)
        if credential is not None:
            try:
                form = await session.read_form(request)
            except Refusal as refusal:
                return refused(request, refusal)
            if not session.csrf_matches(credential, form.get("csrf")):
                return refused(request, Refusal(403, "The sign-out form was not this page's; reload and try again."))
        response = RedirectResponse(SIGN_IN, 303)
        session.forget_credential(response, request)
        return response

    # --- looking and deciding ------------------------------------------------------------------

    @router.get("")
    async def approvals_list(request: Request) -> Response:
        wanted = request.query_params.get("state", "pending")
        try:
            caller = await admit(request, READ)
            if wanted != "all" and wanted not in STATES:
                raise Refusal(400, f"There is no state {wanted[:40]!r}; choose one of {', '.join(STATES)} or all.")
            approvals = await core(request).list(None if wanted == "all" else wanted)
        except Refusal as refusal:
            return refused(request, refusal)
        return page(request, "list.html", caller=caller, approvals=approvals, state=wanted)

    def detail(request: Request, caller: Caller, approval, status: int = 200, **notices: str | None) -> Response:
        """One approval; `notices`: `error`, `decided`, `sent` (a sentence each) and the `note` kept."""
        context = {"decided": None, "error": None, "sent": None, "note": ""} | notices
        return page(
            request,
            "detail.html",
            status,
            caller=caller,
            approval=approval,
            may_decide=caller.allows(DECIDE),
            **context,
        )

    async def find(request: Request, approval_id: str):
        approval = await core(request).get(approval_id) if len(approval_id) <= _ID_LIMIT else None
        if approval is None:
            raise Refusal(404, f"No approval {approval_id[:80]!r} is known; it may have been decided and removed.")
        return approval

    @router.get("/{approval_id}")
    async def approval_detail(request: Request, approval_id: str) -> Response:
        try:
            caller = await admit(request, READ)
            approval = await find(request, approval_id)
        except Refusal as refusal:
            return refused(request, refusal)
        decided = request.query_params.get("decided")
        return detail(request, caller, approval, decided=decided if decided in ("approve", "reject") else None)

    @router.post("/{approval_id}/decision")
    async def decision(request: Request, approval_id: str) -> Response:
        here = approval_url(approval_id)
        credential = session.credential_of(request)
        if credential is None:
            return to_sign_in(request, here)
        try:
            form = await session.read_form(request)
            if not session.csrf_matches(credential, form.get("csrf")):
                raise Refusal(
                    403, "The form's security token is missing or out of date; reload the page and decide again."
                )
            caller = await door.admit(session.bearer(credential), DECIDE)
            approvals = core(request)
        except Refusal as refusal:
            return refused(request, refusal, return_to=here)
        choice, note = form.get("decision", ""), form.get("note", "").strip()

        async def again(status: int, error: str, approval=None) -> Response:
            """The approval once more, with why the decision did not go through and the note kept."""
            try:
                approval = approval or await find(request, approval_id)
            except Refusal as refusal:
                return refused(request, Refusal(refusal.status, f"{error} {refusal.detail}"))
            return detail(request, caller, approval, status, error=error, note=note)

        if choice not in ("approve", "reject"):
            return await again(400, "Choose Approve or Reject.")
        if len(note) > MAX_NOTE_CHARS:
            return await again(400, f"The note is {len(note)} characters long; keep it to {MAX_NOTE_CHARS}.")
        try:
            result = await approvals.decide(approval_id, caller=caller, decision=choice, note=note, via="page")
        except ApprovalRefused as exc:
            _log().info("gateway.approval_page_refused", approval=approval_id, caller=caller.id, why=exc.detail)
            return await again(exc.status, f"Your decision was refused: {exc.detail}")
        _log().info(
            "gateway.approval_page_decided",
            approval=approval_id,
            caller=caller.id,
            decision=choice,
            pending=result.pending,
        )
        if result.pending:  # on the bus, but the coordinator has not answered yet: say so, never "recorded"
            sent = f"Your decision ({choice}) was sent, but the mesh has not confirmed it yet; reload in a moment."
            return detail(request, caller, result.approval, 202, sent=sent)
        if not result.accepted:
            return await again(409, f"Your decision was not taken: {result.detail}", result.approval)
        return RedirectResponse(f"{here}?decided={choice}", 303)

    return router
