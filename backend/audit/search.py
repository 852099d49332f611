"""Searching the audit trail (admins only; every search is itself audited)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime

from sqlmodel import Session, select
from sqlmodel.sql.expression import SelectOfScalar

from backend.audit.models import AuditEvent
from backend.audit.schemas import AuditEventOut, AuditFilter


def _aware(moment: datetime) -> datetime:
    """Read a time without an offset as UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _query(filters: AuditFilter) -> SelectOfScalar[AuditEvent]:
    query = select(AuditEvent)
    if filters.actor_id:
        query = query.where(AuditEvent.actor_id == filters.actor_id)
    if filters.patient_id:
        query = query.where(AuditEvent.patient_id == filters.patient_id)
    if filters.action:
        if filters.action.endswith("."):
            query = query.where(AuditEvent.action.startswith(filters.action))  # type: ignore[attr-defined]
        else:
            query = query.where(AuditEvent.action == filters.action)
    if filters.outcome:
        query = query.where(AuditEvent.outcome == filters.outcome.value)
    if filters.since:
        query = query.where(AuditEvent.occurred_at >= _aware(filters.since))
    if filters.until:
        query = query.where(AuditEvent.occurred_at < _aware(filters.until))
    return query


def search(session: Session, filters: AuditFilter, *, before_seq: int | None, limit: int) -> list[AuditEvent]:
    """Newest first; ``before_seq`` continues after the last event of the previous page."""
    query = _query(filters)
    if before_seq is not None:
        query = query.where(AuditEvent.seq < before_seq)
    return list(session.exec(query.order_by(AuditEvent.seq.desc()).limit(limit)))  # type: ignore[attr-defined]


FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    """Neutralise a cell a spreadsheet would run as a formula (OWASP "CSV injection").

    Audit cells carry text an attacker controls (an e-mail typed at the login box, a reason), so a text
    cell that starts with ``= + - @``, a tab or a carriage return gets a leading single quote: spreadsheets
    then show it as text. Numbers are written as they are. Only the export changes; the trail keeps the
    original (it is what the hash chain covers)."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def export_csv(session: Session, filters: AuditFilter, *, max_rows: int) -> Iterator[str]:
    columns = list(AuditEventOut.model_fields)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    query = _query(filters).order_by(AuditEvent.seq).limit(max_rows)  # type: ignore[arg-type]
    for row in session.exec(query):
        writer.writerow([csv_cell(getattr(row, c)) for c in columns])
        if buffer.tell() > 64_000:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
