"""The append-only, hash-chained audit trail."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlmodel import Field, SQLModel

from backend.core.defaults import new_id


class Outcome(StrEnum):
    allowed = "allowed"
    denied = "denied"
    failed = "failed"


class AuditEvent(SQLModel, table=True):
    """One audited action. ``hash`` = HMAC(audit key, prev_hash + canonical content).

    ``seq`` orders the chain; ``prev_hash`` links each event to the one before it, so a change,
    deletion, insertion or reordering shows up in `backend.audit.verify`. No image bytes and no
    identifying patient fields are ever stored here, only ids.
    """

    __tablename__ = "audit_event"

    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    id: uuid.UUID = Field(default_factory=new_id, unique=True)
    occurred_at: datetime = Field(index=True)
    actor_id: uuid.UUID | None = Field(default=None, index=True)
    actor_role: str | None = Field(default=None, max_length=20)
    action: str = Field(max_length=64, index=True)
    resource_type: str | None = Field(default=None, max_length=64)
    resource_id: str | None = Field(default=None, max_length=254)
    patient_id: str | None = Field(default=None, max_length=64, index=True)
    outcome: str = Field(max_length=10, index=True)
    client_address: str | None = Field(default=None, max_length=64)
    request_id: str | None = Field(default=None, max_length=64)
    reason: str | None = Field(default=None, max_length=1000)
    detail: str = Field(default="{}", max_length=4000)  # small JSON object, never patient identifiers
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class AuditChainHead(SQLModel, table=True):
    """A single row: the last event's seq and hash. Locked while appending, so the chain stays linear,
    and it lets `verify` notice events deleted from the end of the chain.

    ``mac`` authenticates (seq, hash) with a key derived from the audit key, so someone who can write
    the database but lacks the master key cannot move the head back after cutting events off the end.
    It is NULL only for the genesis head of a new database (seq 0); an old authentic head can still be
    replayed, which the checkpoints outside the database (`backend.audit.anchor`) catch."""

    __tablename__ = "audit_chain_head"

    id: int = Field(default=1, primary_key=True)
    seq: int = 0
    hash: str = Field(max_length=64)
    mac: str | None = Field(default=None, max_length=64)
