"""/api/v1/cases (clinicians submit and read; dermatologists read what is routed to them) and
/api/v1/queue (dermatologists: the consultation queue, claims and answers)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Header, Query, Request, Response, UploadFile, status
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError
from sqlmodel import Session

from backend.audit.service import record
from backend.cases.models import Case
from backend.cases.schemas import HEATMAP_LABEL, AnswerCreate, CaseCreate, CaseOut, CaseSummary, QueueItem
from backend.cases.service import CaseService, Upload, visible_cases
from backend.config import Settings
from backend.consent.service import ConsentRequired
from backend.core.actor import Actor
from backend.core.errors import (
    Conflict,
    Gone,
    NotFound,
    PreconditionFailed,
    ServiceUnavailable,
    ValidationFailed,
)
from backend.core.openapi import error_responses
from backend.core.schemas import Page, cursor_int, cursor_moment, cursor_uuid, decode_cursor, page_of
from backend.deps import (
    ClinicalActor,
    ClinicianActor,
    DermatologistActor,
    SettingsDep,
    UnitOfWork,
    commit_refusals,
)

_IMAGE_NOTES = {
    413: "An image over the per-image limit is `too_large`.",
    415: "An upload that is no image (`not_an_image`) or of another format (`unsupported_format`).",
    422: "An image refused for what it is: `empty`, `truncated`, `corrupt`, `animated`, `too_small`, "
    "`trailing_data`, `decompression_bomb`.",
}
router = APIRouter(
    prefix="/api/v1/cases",
    tags=["cases"],
    responses=error_responses(
        NotFound, Gone, Conflict, ConsentRequired, PreconditionFailed, ServiceUnavailable, notes=_IMAGE_NOTES
    ),
)
queue_router = APIRouter(
    prefix="/api/v1/queue",
    tags=["queue"],
    responses=error_responses(NotFound, Gone, Conflict, ConsentRequired),
)


async def get_case_service(request: Request) -> CaseService:
    return request.app.state.cases


CaseServiceDep = Annotated[CaseService, Depends(get_case_service)]
IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        min_length=8,
        max_length=100,
        description="A random key per submission; retries reuse it",
    ),
]
IfMatch = Annotated[str | None, Header(alias="If-Match", max_length=40)]


def _respond(response: Response, out: CaseOut) -> CaseOut:
    response.headers["ETag"] = f'"{out.version}"'
    return out


def _parse_metadata(metadata: str) -> CaseCreate:
    try:
        return CaseCreate.model_validate_json(metadata)
    except ValidationError as exc:
        errors = [{"loc": ["metadata", *e["loc"]], "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        raise ValidationFailed(errors) from exc


@router.post(
    "",
    response_model=CaseOut,
    status_code=status.HTTP_201_CREATED,
    responses={200: {"description": "A retry of a submission already stored (same Idempotency-Key)"}},
)
async def submit_case(
    request: Request,
    response: Response,
    actor: ClinicianActor,
    session: UnitOfWork,
    settings: SettingsDep,
    cases: CaseServiceDep,
    idempotency_key: IdempotencyKey,
    metadata: Annotated[str, Form(max_length=10_000, description="CaseCreate as JSON")],
    images: Annotated[list[UploadFile], File(description="JPEG, PNG or HEIC photos of the lesion")],
) -> CaseOut:
    """Submit a lesion: stored encrypted, analysed by the classifier, triaged and routed.

    The response carries the analysis when it finishes within a few seconds; otherwise poll the case.
    A retry with the same Idempotency-Key returns the stored case instead of creating another."""
    # All of the work blocks (images, the model, the database), so one worker thread does it; the route
    # itself is async because FastAPI checks a sync route's answer against its schema in a second worker
    # thread, a hand-off this hot path need not pay.
    return await run_in_threadpool(
        _submit, request, response, actor, session, settings, cases, idempotency_key, metadata, images
    )


def _submit(
    request: Request,
    response: Response,
    actor: Actor,
    session: Session,
    settings: Settings,
    cases: CaseService,
    idempotency_key: str,
    metadata: str,
    images: list[UploadFile],
) -> CaseOut:
    body = _parse_metadata(metadata)
    uploads = [Upload(i.filename or "", i.file.read(settings.max_image_bytes + 1)) for i in images]
    dispatcher = request.app.state.dispatcher
    # A follow-up photo is also compared with the lesion's previous one (a second or two of CPU): that
    # runs in the analysis job, not inside the submission.
    inline = dispatcher.inline and body.lesion_id is None
    with commit_refusals(session, NotFound):  # the denied look-up of the patient stays in the audit trail
        case, job, created, out = cases.submit(
            session, actor, body, uploads, idempotency_key, analyse_inline=inline
        )
    if not created:
        response.status_code = status.HTTP_200_OK
    elif out is not None:  # analysed in this transaction: the view was built from the rows in memory
        return _respond(response, out)
    elif not inline:
        # Analysis happens elsewhere (RQ workers, the embedded runner for a follow-up, or a Triton call with
        # its own timeouts): the case must be durable before anyone is told about its job, so this one route
        # commits early.
        session.commit()
        dispatcher.submit(job.id)
        dispatcher.wait(job.id, settings.analysis_wait_seconds)
        session.expire_all()  # read what the worker wrote
    return _respond(response, cases.view(session, case))


@router.get("", response_model=Page[CaseSummary])
def list_cases(
    actor: ClinicalActor,
    session: UnitOfWork,
    state: Annotated[str | None, Query(max_length=24)] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> Page[CaseSummary]:
    """Your cases, newest first (clinicians: your clinic's; dermatologists: those routed to you)."""
    query = visible_cases(actor)
    if state:
        query = query.where(Case.state == state)
    if cursor:
        moment, case_id = decode_cursor(cursor, cursor_moment, cursor_uuid)
        query = query.where((Case.created_at < moment) | ((Case.created_at == moment) & (Case.id < case_id)))
    rows = list(session.exec(query.order_by(Case.created_at.desc(), Case.id.desc()).limit(limit + 1)))  # type: ignore[attr-defined]
    page = page_of(
        rows,
        limit,
        item=lambda c: CaseSummary(
            id=c.id,
            patient_id=c.patient_id,
            state=c.state,
            triage_level=c.triage_level,
            created_at=c.created_at,
            updated_at=c.updated_at,
        ),
        cursor=lambda c: [c.created_at.isoformat(), str(c.id)],
    )
    record(session, actor.ctx, "case.list", resource_type="case", detail={"items": len(page.items)})
    return page


@router.get("/{case_id}", response_model=CaseOut)
def read_case(
    case_id: uuid.UUID, response: Response, actor: ClinicalActor, session: UnitOfWork, cases: CaseServiceDep
) -> CaseOut:
    """The case with its images' metadata, AI result (with its disclaimer), triage, answer and history."""
    with commit_refusals(session, NotFound, Gone):
        case = cases.get(session, actor, case_id)
    return _respond(response, cases.view(session, case))


@router.get(
    "/{case_id}/images/{image_id}", response_class=Response, responses={200: {"content": {"image/jpeg": {}}}}
)
def read_image(
    case_id: uuid.UUID, image_id: uuid.UUID, actor: ClinicalActor, session: UnitOfWork, cases: CaseServiceDep
) -> Response:
    """The lesion image (metadata stripped at intake), decrypted for this request only."""
    with commit_refusals(session, NotFound, Gone):
        data = cases.image(session, actor, case_id, image_id)
    return Response(content=data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


@router.get(
    "/{case_id}/images/{image_id}/heatmap",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}, "description": "The heatmap PNG"}},
)
def read_heatmap(
    case_id: uuid.UUID, image_id: uuid.UUID, actor: ClinicalActor, session: UnitOfWork, cases: CaseServiceDep
) -> Response:
    """Where the model looked, not a diagnosis: the top class's class-activation map over the image
    (the model's 224x224 input), drawn on the first view and kept encrypted, decrypted for this request
    only. 404 when the image has no heatmap (not analysed yet, or a model without class maps)."""
    with commit_refusals(session, NotFound, Gone):
        data = cases.heatmap(session, actor, case_id, image_id)
    return Response(
        content=data,
        media_type="image/png",
        headers={"Cache-Control": "no-store", "X-Content-Label": HEATMAP_LABEL},
    )


@router.post("/{case_id}/answer", response_model=CaseOut)
def answer_case(
    case_id: uuid.UUID,
    body: AnswerCreate,
    response: Response,
    actor: DermatologistActor,
    session: UnitOfWork,
    cases: CaseServiceDep,
    if_match: IfMatch = None,
) -> CaseOut:
    """Answer a case you have claimed: diagnosis, management plan and a note. Needs If-Match."""
    with commit_refusals(session, Gone):
        case = cases.answer(session, actor, case_id, body, if_match)
    return _respond(response, cases.view(session, case))


@router.post("/{case_id}/close", response_model=CaseOut)
def close_case(
    case_id: uuid.UUID,
    response: Response,
    actor: ClinicianActor,
    session: UnitOfWork,
    cases: CaseServiceDep,
    if_match: IfMatch = None,
) -> CaseOut:
    case = cases.close(session, actor, case_id, if_match)
    return _respond(response, cases.view(session, case))


@queue_router.get("", response_model=Page[QueueItem])
def queue(
    actor: DermatologistActor,
    session: UnitOfWork,
    cases: CaseServiceDep,
    cursor: Annotated[str | None, Query(max_length=300)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> Page[QueueItem]:
    """Waiting cases, urgent first, then longest waiting. Claim one to see its images."""
    after = decode_cursor(cursor, cursor_int, cursor_moment, cursor_uuid) if cursor else None
    items = cases.queue(session, actor, after=after, limit=limit + 1)
    return page_of(
        items,
        limit,
        item=lambda i: i,
        cursor=lambda i: [
            0 if i.triage_level == "urgent" else 1,
            i.waiting_since.isoformat(),
            str(i.case_id),
        ],
    )


@queue_router.post("/{case_id}/claim", response_model=CaseOut)
def claim(
    case_id: uuid.UUID,
    response: Response,
    actor: DermatologistActor,
    session: UnitOfWork,
    cases: CaseServiceDep,
) -> CaseOut:
    """Claim a waiting case for yourself; the claim expires, returning the case to the queue."""
    with commit_refusals(session, Gone):
        case = cases.claim(session, actor, case_id)
    return _respond(response, cases.view(session, case))


@queue_router.post("/{case_id}/release", response_model=CaseOut)
def release(
    case_id: uuid.UUID,
    response: Response,
    actor: DermatologistActor,
    session: UnitOfWork,
    cases: CaseServiceDep,
) -> CaseOut:
    with commit_refusals(session, Gone):
        case = cases.release(session, actor, case_id)
    return _respond(response, cases.view(session, case))
