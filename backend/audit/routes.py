"""/api/v1/audit: search, CSV export and chain verification (admins only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from backend.audit import search as audit_search
from backend.audit.schemas import AuditEventOut, AuditFilter, VerifyOut
from backend.audit.service import record
from backend.audit.verify import verify_chain
from backend.core.openapi import error_responses
from backend.core.schemas import Page, cursor_int, decode_cursor, page_of
from backend.deps import AdminActor, DatabaseDep, UnitOfWork

router = APIRouter(prefix="/api/v1/audit", tags=["audit"], responses=error_responses())
FilterDep = Annotated[AuditFilter, Depends()]
MAX_EXPORT_ROWS = 100_000


@router.get("/events", response_model=Page[AuditEventOut])
def search_events(
    actor: AdminActor,
    session: UnitOfWork,
    filters: FilterDep,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page[AuditEventOut]:
    """Events newest first, filtered by actor, patient, action (or an action prefix like ``auth.``),
    outcome and time range."""
    before = decode_cursor(cursor, cursor_int)[0] if cursor else None
    rows = audit_search.search(session, filters, before_seq=before, limit=limit + 1)
    record(
        session,
        actor.ctx,
        "audit.search",
        resource_type="audit_event",
        detail=filters.model_dump(mode="json", exclude_none=True),
    )
    return page_of(rows, limit, item=AuditEventOut.model_validate, cursor=lambda r: [r.seq])


@router.get("/events.csv", response_class=StreamingResponse)
def export_events(
    actor: AdminActor, session: UnitOfWork, db: DatabaseDep, filters: FilterDep
) -> StreamingResponse:
    """The same filters as the search, as CSV (oldest first, at most 100,000 rows)."""
    record(
        session,
        actor.ctx,
        "audit.export",
        resource_type="audit_event",
        detail=filters.model_dump(mode="json", exclude_none=True),
    )

    def rows():  # type: ignore[no-untyped-def]
        with db.session() as export_session:
            yield from audit_search.export_csv(export_session, filters, max_rows=MAX_EXPORT_ROWS)

    return StreamingResponse(
        rows(),
        media_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="dermalink-audit.csv"'},
    )


@router.get("/verify", response_model=VerifyOut)
def verify(request: Request, actor: AdminActor, session: UnitOfWork, db: DatabaseDep) -> VerifyOut:
    """Check the hash chain, its authenticated head and the checkpoints kept outside the database: lists
    modified, inserted, deleted, reordered and truncated events, and reports the newest checkpoint."""
    result = verify_chain(session, db.audit_key, request.app.state.services.checkpoints.scan())
    record(
        session,
        actor.ctx,
        "audit.verify",
        outcome="allowed" if result.ok else "failed",
        detail={"events": result.events, "findings": len(result.findings)},
    )
    return VerifyOut(
        ok=result.ok,
        events=result.events,
        findings=[f.__dict__ for f in result.findings],
        checkpoint=result.checkpoint.__dict__ if result.checkpoint else None,
    )
