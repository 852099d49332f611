"""FHIR R4 exports: ``GET /api/v1/cases/{id}/fhir`` (a case as a Bundle) and
``GET /api/v1/audit/events.fhir`` (audit events as BALP-shaped AuditEvents). Same roles, visibility
and audit as the JSON routes they mirror; answers are ``application/fhir+json``."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from backend.audit import search as audit_search
from backend.audit.schemas import AuditFilter
from backend.audit.service import record
from backend.core.errors import Gone, NotFound
from backend.core.openapi import error_responses
from backend.core.schemas import cursor_int, decode_cursor, encode_cursor
from backend.deps import AdminActor, ClinicalActor, SettingsDep, UnitOfWork, commit_refusals
from backend.fhir.audit_export import audit_bundle
from backend.fhir.case_export import CaseExporter

FHIR_JSON = "application/fhir+json"
cases_router = APIRouter(prefix="/api/v1/cases", tags=["fhir"], responses=error_responses(NotFound, Gone))
audit_router = APIRouter(prefix="/api/v1/audit", tags=["fhir"], responses=error_responses())


def get_exporter(request: Request, settings: SettingsDep) -> CaseExporter:
    return CaseExporter(request.app.state.cases, request.app.state.patients, settings.fhir_system_base)


def _fhir(body: dict[str, Any]) -> Response:
    return Response(
        content=json.dumps(body, separators=(",", ":")),
        media_type=FHIR_JSON,
        headers={"Cache-Control": "no-store"},
    )


@cases_router.get("/{case_id}/fhir", response_class=Response, responses={200: {"content": {FHIR_JSON: {}}}})
def case_bundle(
    case_id: uuid.UUID,
    request: Request,
    actor: ClinicalActor,
    session: UnitOfWork,
    exporter: Annotated[CaseExporter, Depends(get_exporter)],
) -> Response:
    """The case as a FHIR R4 Bundle (collection): Patient, Consent, Media (by URL), Observation per AI
    result, DiagnosticReport for the answer, Provenance. See docs/fhir.md."""
    with commit_refusals(session, NotFound):
        bundle = exporter.export(session, actor, case_id, str(request.base_url))
    return _fhir(bundle)


@audit_router.get("/events.fhir", response_class=Response, responses={200: {"content": {FHIR_JSON: {}}}})
def audit_events(
    request: Request,
    actor: AdminActor,
    session: UnitOfWork,
    settings: SettingsDep,
    filters: Annotated[AuditFilter, Depends()],
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Response:
    """The same search as ``/audit/events`` (newest first, same filters and cursor) as a FHIR searchset
    Bundle of AuditEvents shaped after IHE BALP."""
    before = decode_cursor(cursor, cursor_int)[0] if cursor else None
    rows = audit_search.search(session, filters, before_seq=before, limit=limit + 1)
    next_url = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_url = str(request.url.include_query_params(cursor=encode_cursor([rows[-1].seq])))
    record(
        session,
        actor.ctx,
        "audit.search",
        resource_type="audit_event",
        detail={**filters.model_dump(mode="json", exclude_none=True), "format": "fhir"},
    )
    return _fhir(audit_bundle(rows, settings.fhir_system_base, next_url))
