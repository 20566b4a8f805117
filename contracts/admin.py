"""What an operator did to an agent (pause, resume, drain): who, when, what.

Each action is one record in the admin stream (`<NS>_ADMIN`), on `<ns>.admin.<action>.<agent>`,
kept 90 days; `mesh admin history` lists them and `mesh agents` shows each agent's last one.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from uuid import uuid4

from pydantic import BaseModel, Field

from contracts.envelope import utc_now


class Action(StrEnum):
    PAUSE = "pause"  # its durable consumers deliver nothing until `until` (or a resume)
    RESUME = "resume"  # they deliver again
    DRAIN = "drain"  # its instances finish what they hold and exit


class AdminAction(BaseModel):
    """`admin.action`: one operator action on one agent, as recorded on the bus."""

    id: str = Field(
        default_factory=lambda: uuid4().hex,
        description="Unique id of this action (its `Nats-Msg-Id` is `admin:<id>`).",
        examples=["5b0c7f3e2a4d4e6f8a9b0c1d2e3f4a5b"],
    )
    action: Action = Field(description="pause, resume or drain.", examples=["pause"])
    agent: str = Field(description="The agent acted on.", examples=["security"])
    by: str = Field(
        description="Who did it: the operator's user and host, and the NATS credentials used, if any.",
        examples=["alice@ops-laptop (creds: operator)"],
    )
    at: datetime = Field(default_factory=utc_now, description="When (UTC, RFC 3339).")
    until: datetime | None = Field(
        default=None,
        description="For a pause: when the consumers deliver again by themselves; none means until resumed.",
        examples=["2026-11-22T12:00:00Z"],
    )
    consumers: list[str] = Field(
        default_factory=list,
        description="The durable consumers paused or resumed, as `stream/durable`.",
        examples=[["MESH_EVENTS/security"]],
    )
    note: str = Field(default="", description="Anything else worth knowing, e.g. which instances answered a drain.")

    def summary(self) -> str:
        """`pause security by alice@host at 2026-… until 2026-…`, one line."""
        line = f"{self.action.value} {self.agent} by {self.by} at {self.at.isoformat(timespec='seconds')}"
        if self.action is Action.PAUSE:
            line += f" until {self.until.isoformat(timespec='seconds')}" if self.until else " until resumed"
        return line
