"""Recording audit events in the same transaction as the action they describe.

`record` only queues the event on the SQLAlchemy session; a ``before_commit`` hook appends the
queued events to the chain (locking the chain head) as part of that same commit. So an action never
commits without its event, a rolled-back action leaves no event, and the head lock is held only for
the commit itself.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import event, update
from sqlmodel import Session, select

from backend.audit.models import AuditChainHead, AuditEvent, Outcome
from backend.core.actor import AuditContext
from backend.core.clock import utcnow
from backend.core.errors import DermaLinkError
from backend.core.keys import derive_key
from backend.core.logging import log
from backend.db import insert_rows, take_write_lock

GENESIS_HASH = "0" * 64
_PENDING = "audit_pending"
AUDIT_KEY = "audit_key"  # Session.info key holding the HMAC key (set by `backend.database.Database`)

HASHED_FIELDS = (
    "id",
    "occurred_at",
    "actor_id",
    "actor_role",
    "action",
    "resource_type",
    "resource_id",
    "patient_id",
    "outcome",
    "client_address",
    "request_id",
    "reason",
    "detail",
)


def _canonical(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat(timespec="microseconds")
    return value


def content_bytes(event_row: AuditEvent) -> bytes:
    payload = {name: _canonical(getattr(event_row, name)) for name in HASHED_FIELDS}
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def chain_hash(key: bytes, prev_hash: str, event_row: AuditEvent) -> str:
    return hmac.new(key, prev_hash.encode() + content_bytes(event_row), hashlib.sha256).hexdigest()


class AuditChainBroken(DermaLinkError):
    """The chain head failed authentication (deleted, or moved without the key): nothing is appended to
    it, so a forged head is never extended (and thereby blessed) by genuine events. `dermalink audit
    verify` says what was found."""

    status_code, type = 500, "audit_chain_broken"


@functools.lru_cache(maxsize=8)
def head_key(audit_key: bytes) -> bytes:
    """The head's MAC key: derived from the audit key (itself derived from the master key)."""
    return derive_key(audit_key, "audit-chain-head")


def head_mac(audit_key: bytes, seq: int, hash_: str) -> str:
    return hmac.new(head_key(audit_key), f"{seq}|{hash_}".encode(), hashlib.sha256).hexdigest()


def head_is_authentic(audit_key: bytes, head: Any) -> bool:
    """A head (the `AuditChainHead` row, or a row of its ``seq``, ``hash`` and ``mac`` columns) is
    authentic when its MAC matches, or it is the untouched genesis head of a new database."""
    if head.mac is None:
        return head.seq == 0 and head.hash == GENESIS_HASH
    return hmac.compare_digest(head.mac, head_mac(audit_key, head.seq, head.hash))


def seal_legacy_head(session: Session, audit_key: bytes) -> bool:
    """Authenticate a head written before heads had a MAC (migration 0004), once: only when it names a
    genuine last event. The caller does this only while no checkpoint exists outside the database, so an
    attacker who strips the MAC later gains nothing (see `backend.audit.anchor`). Returns whether it sealed."""
    head = session.exec(select(AuditChainHead).where(AuditChainHead.id == 1).with_for_update()).first()
    if head is None or head.mac is not None or head.seq == 0:
        return False
    last = session.exec(select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1)).first()  # type: ignore[attr-defined]
    if last is None or (last.seq, last.hash) != (head.seq, head.hash):
        return False
    if chain_hash(audit_key, last.prev_hash, last) != last.hash:
        return False
    head.mac = head_mac(audit_key, head.seq, head.hash)
    session.add(head)
    return True


def record(
    session: Session,
    ctx: AuditContext,
    action: str,
    *,
    outcome: Outcome | str = Outcome.allowed,
    resource_type: str | None = None,
    resource_id: Any = None,
    patient_id: Any = None,
    reason: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Queue one event; it is written when (and only if) ``session`` commits."""
    row = AuditEvent(
        seq=0,
        occurred_at=utcnow(),
        actor_id=ctx.actor_id,
        actor_role=ctx.actor_role,
        action=action,
        resource_type=resource_type,
        resource_id=None if resource_id is None else str(resource_id)[:254],
        patient_id=None if patient_id is None else str(patient_id),
        outcome=str(outcome),
        client_address=ctx.client_address,
        request_id=ctx.request_id,
        reason=reason[:1000] if reason else None,
        detail=json.dumps(detail or {}, sort_keys=True, default=str)[:4000],
        prev_hash="",
        hash="",
    )
    if not session.in_transaction():
        session.begin()  # so that a rollback (which ends a transaction) also drops this event
    session.info.setdefault(_PENDING, []).append(row)


def has_pending(session: Session) -> bool:
    """Whether events are queued on ``session`` (they are written by its next commit)."""
    return bool(session.info.get(_PENDING))


def take_pending(session: Session) -> list[AuditEvent]:
    """Remove the events queued on ``session`` and return them, for a commit made on another session
    (`backend.group_commit`); ``session``'s own commit then writes none of them."""
    return session.info.pop(_PENDING, [])


def queue_events(session: Session, events: list[AuditEvent]) -> None:
    """Queue events taken from another session (`take_pending`) on ``session``: its commit writes them."""
    if not events:
        return
    if not session.in_transaction():
        session.begin()
    session.info.setdefault(_PENDING, []).extend(events)


# The chain head's statements (SQLAlchemy Core: no ORM layer is needed for three columns), built once:
# every audited write runs them while it holds the write lock.
_HEADS = AuditChainHead.__table__
_HEAD = (
    select(_HEADS.c.seq, _HEADS.c.hash, _HEADS.c.mac)  # type: ignore[attr-defined]
    .where(_HEADS.c.id == 1)  # type: ignore[attr-defined]
    .with_for_update()
)
_MOVE_HEAD = update(_HEADS).where(_HEADS.c.id == 1)  # type: ignore[arg-type, attr-defined]


def _append_pending(session: Session) -> None:
    pending: list[AuditEvent] = session.info.pop(_PENDING, [])
    if not pending:
        return
    key: bytes = session.info[AUDIT_KEY]
    # The head is read under the write lock on SQLite, and with its row locked on PostgreSQL, so that no
    # other transaction appends meanwhile.
    take_write_lock(session)
    head = session.connection().execute(_HEAD).first()
    if head is None or not head_is_authentic(key, head):
        log.error("audit chain head failed authentication; refusing to append", deleted=head is None)
        raise AuditChainBroken(
            "the audit chain head is missing or was changed without the key; run `dermalink audit verify`"
        )
    seq, hash_ = head.seq, head.hash
    for row in pending:
        seq += 1
        row.seq, row.prev_hash = seq, hash_
        hash_ = row.hash = chain_hash(key, hash_, row)
    # One multi-row INSERT and one UPDATE (SQLAlchemy Core): the events are complete, and the ORM's unit
    # of work would cost more than the statements while the chain head is locked.
    insert_rows(session, pending)
    session.connection().execute(_MOVE_HEAD, {"seq": seq, "hash": hash_, "mac": head_mac(key, seq, hash_)})


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    _append_pending(session)


@event.listens_for(Session, "after_soft_rollback")
def _after_rollback(session: Session, _previous_transaction: object) -> None:
    """Any rollback, even of a transaction that never reached the database, drops queued events."""
    session.info.pop(_PENDING, None)
