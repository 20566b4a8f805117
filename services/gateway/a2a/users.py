"""The authenticated caller, handed to the SDK: its `User` (whose name owns the caller's tasks)
and the call context every handler method receives."""

from __future__ import annotations

from a2a.auth.user import User
from a2a.server.context import ServerCallContext
from a2a.server.routes import DefaultServerCallContextBuilder
from starlette.requests import Request

from services.gateway.callers import Caller

CALLER = "a2a_caller"  # where the door leaves the caller, in the request's state


class CallerUser(User):
    """A gateway caller as the SDK sees a user."""

    def __init__(self, caller: Caller) -> None:
        self.caller = caller

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def user_name(self) -> str:
        return self.caller.id


class CallerContextBuilder(DefaultServerCallContextBuilder):
    """The SDK's call context (headers, requested extensions), with the caller the door let in."""

    def build_user(self, request: Request) -> User:
        return CallerUser(getattr(request.state, CALLER))


def caller_of(context: ServerCallContext) -> Caller:
    user = context.user
    if not isinstance(user, CallerUser):
        raise TypeError("an A2A request reached the handler without passing the door (services/gateway/a2a/mount.py)")
    return user.caller
