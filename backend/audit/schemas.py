from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from backend.audit.models import Outcome
from backend.core.schemas import ResponseBody


class AuditFilter(BaseModel):
    actor_id: uuid.UUID | None = None
    patient_id: str | None = Field(default=None, max_length=64)
    action: str | None = Field(
        default=None, max_length=64, description="Exact action, or a prefix ending in '.'"
    )
    outcome: Outcome | None = None
    since: datetime | None = None
    until: datetime | None = None


class AuditEventOut(ResponseBody):
    seq: int
    id: uuid.UUID
    occurred_at: datetime
    actor_id: uuid.UUID | None
    actor_role: str | None
    action: str
    resource_type: str | None
    resource_id: str | None
    patient_id: str | None
    outcome: str
    client_address: str | None
    request_id: str | None
    reason: str | None
    detail: str


class CheckpointOut(ResponseBody):
    checkpoints: int = Field(description="Authentic checkpoints found outside the database")
    newest_seq: int | None = Field(description="The newest checkpoint's event number")
    newest_written_at: str | None
    events_present: bool = Field(description="Every event up to the newest checkpoint is present")
    forged: int = Field(description="Checkpoints that failed authentication")


class VerifyOut(ResponseBody):
    ok: bool
    events: int
    findings: list[dict]
    checkpoint: CheckpointOut | None = None
