"""The gateway's approval routes: list and read the approvals of escalated releases, and decide
one. Each route passes the door first (services/gateway/door.py); what the mesh refuses is a
problem with the coordinator's status and reason."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bus.api import problem_response
from contracts.approvals import MAX_NOTE_CHARS, ApprovalView
from contracts.validation import describe_errors
from services.gateway.approvals import DECIDE_APPROVALS, READ_APPROVALS, STATES, ApprovalRefused, Approvals, links
from services.gateway.bodies import read_body
from services.gateway.door import Door, Refusal
from services.gateway.routes import AUTH_ERRORS

APPROVAL_ID = r"^[A-Za-z0-9_=-]{1,80}\.[0-9a-f]{0,12}$"
UNKNOWN = {404: problem_response("No approval with that id.")}
REFUSED = {
    403: problem_response("The caller lacks the scope, or is not one of this approval's approvers."),
    404: problem_response("No approval with that id, or nothing to decide."),
    409: problem_response("Decided already by this caller, settled, or past the approval deadline."),
    413: problem_response("The body is over the configured limit."),
    415: problem_response("The body is not JSON."),
    422: problem_response("The body is not `{decision, note}`; `errors` names each bad field."),
}


class DecisionBody(BaseModel):
    """A person's decision on an approval."""

    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "reject"] = Field(description="approve or reject.", examples=["approve"])
    note: str = Field(default="", max_length=MAX_NOTE_CHARS, description="Why, in your words (kept on the record).")


def as_json(view: ApprovalView) -> dict[str, Any]:
    return {**view.model_dump(mode="json"), "links": links(view)}


def approvals_routes(door: Door, approvals: Approvals) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["approvals"])
    settings = door.settings

    @router.get(
        "/approvals",
        summary="Approvals of escalated releases (pending ones by default)",
        responses={**AUTH_ERRORS},
    )
    async def list_approvals(
        request: Request,
        state: Annotated[
            str, Query(description=f"One of {', '.join(STATES)}, or `all`.", pattern=r"^[a-z]{1,16}$")
        ] = "pending",
    ) -> dict[str, Any]:
        await door.admit(request.headers, READ_APPROVALS)
        try:
            found = await approvals.list(None if state == "all" else state)
        except ApprovalRefused as exc:
            raise Refusal(exc.status, exc.detail) from None
        return {"state": state, "approvals": [as_json(view) for view in found]}

    @router.get(
        "/approvals/{approval_id}",
        summary="One approval: the release, the findings by file and line, who may decide, by when, what was decided",
        responses={**AUTH_ERRORS, **UNKNOWN},
    )
    async def get_approval(request: Request, approval_id: Annotated[str, Path(pattern=APPROVAL_ID)]) -> dict[str, Any]:
        await door.admit(request.headers, READ_APPROVALS)
        view = await approvals.get(approval_id)
        if view is None:
            raise Refusal(404, f"no approval {approval_id!r} is known")
        return as_json(view)

    @router.post(
        "/approvals/{approval_id}/decision",
        summary="Approve or reject an escalated release, as the authenticated caller",
        description="The decider is the caller (`key:<name>`, `jwt:<issuer>#<subject>`); the coordinator takes "
        "the decision only from one of the approval's approvers, once per person, before the outcome and the "
        "approval deadline. `200`: taken; `202`: the coordinator did not answer in time (the decision stays "
        "on the bus), or it was taken and another approver is needed (two-person rule, `accepted: true`).",
        responses={
            200: {"description": "Taken; `approval` is the approval after it (with the outcome if it decided it)."},
            202: {"description": "Taken and more approvals needed, or not answered yet (`accepted: false`)."},
            **AUTH_ERRORS,
            **REFUSED,
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": DecisionBody.model_json_schema()}},
            }
        },
    )
    async def decide(request: Request, approval_id: Annotated[str, Path(pattern=APPROVAL_ID)]) -> JSONResponse:
        caller = await door.admit(request.headers, DECIDE_APPROVALS)
        body = await read_body(request, limit=settings.gateway_body_limit_bytes)
        try:
            wanted = DecisionBody.model_validate_json(body)
        except ValidationError as exc:
            errors = describe_errors(exc, whole="(body)")
            raise Refusal(422, f"the body is not a decision: {'; '.join(errors)}", extra={"errors": errors}) from None
        try:
            result = await approvals.decide(approval_id, caller=caller, decision=wanted.decision, note=wanted.note)
        except ApprovalRefused as exc:
            raise Refusal(exc.status, exc.detail) from None
        answer = {
            "accepted": result.accepted,
            "pending": result.pending,
            "detail": result.detail,
            "decision_id": result.decision_id,
            "approval": as_json(result.approval),
        }
        status = 202 if result.pending or result.status == 202 else 200
        return JSONResponse(answer, status, headers={"Location": f"/v1/approvals/{result.approval.id}"})

    return router
