"""/api/v1/lesions and /api/v1/patients/{id}/lesions: lesions followed over time, follow-ups that are
due, and the aligned comparison of a follow-up with the previous photo."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status

from backend.core.errors import NotFound, ValidationFailed
from backend.core.openapi import error_responses
from backend.deps import ClinicalActor, ClinicianActor, UnitOfWork, commit_refusals
from backend.lesions.schemas import DueLesion, LesionCreate, LesionDetail, LesionOut
from backend.lesions.service import ComparisonView, LesionService

router = APIRouter(prefix="/api/v1/lesions", tags=["lesions"], responses=error_responses(NotFound))
patient_lesions_router = APIRouter(
    prefix="/api/v1/patients", tags=["lesions"], responses=error_responses(NotFound)
)


async def get_lesion_service(request: Request) -> LesionService:
    return request.app.state.lesions


LesionServiceDep = Annotated[LesionService, Depends(get_lesion_service)]


@patient_lesions_router.post(
    "/{patient_id}/lesions", response_model=LesionOut, status_code=status.HTTP_201_CREATED
)
def create_lesion(
    patient_id: uuid.UUID,
    body: LesionCreate,
    actor: ClinicianActor,
    session: UnitOfWork,
    lesions: LesionServiceDep,
) -> LesionOut:
    """Record a lesion to follow (site, a short label, optionally its place on the body map)."""
    with commit_refusals(session, NotFound):
        lesion = lesions.create(session, actor, patient_id, body)
    out = LesionOut.model_validate(lesion)
    return out


@patient_lesions_router.get("/{patient_id}/lesions", response_model=list[LesionOut])
def list_lesions(
    patient_id: uuid.UUID, actor: ClinicalActor, session: UnitOfWork, lesions: LesionServiceDep
) -> list[LesionOut]:
    """The patient's lesions, oldest first."""
    with commit_refusals(session, NotFound):
        rows = lesions.for_patient(session, actor, patient_id)
    out = [LesionOut.model_validate(r) for r in rows]
    return out


@router.get("/due", response_model=list[DueLesion])
def due_lesions(
    actor: ClinicianActor,
    session: UnitOfWork,
    lesions: LesionServiceDep,
    within_days: Annotated[int, Query(ge=0, le=365, description="0: due today or overdue")] = 0,
) -> list[DueLesion]:
    """Your clinic's lesions whose follow-up photo is due (or overdue), most overdue first."""
    out = lesions.due(session, actor, within_days)
    return out


@router.get("/{lesion_id}", response_model=LesionDetail)
def read_lesion(
    lesion_id: uuid.UUID, actor: ClinicalActor, session: UnitOfWork, lesions: LesionServiceDep
) -> LesionDetail:
    """The lesion, its visits (cases) and the change measured at each follow-up."""
    with commit_refusals(session, NotFound):
        lesion = lesions.get(session, actor, lesion_id)
    out = lesions.detail(session, actor, lesion)
    return out


@router.get(
    "/{lesion_id}/changes/{case_id}/image",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
)
def comparison_image(
    lesion_id: uuid.UUID,
    case_id: uuid.UUID,
    actor: ClinicalActor,
    session: UnitOfWork,
    lesions: LesionServiceDep,
    view: Annotated[ComparisonView, Query()] = "side_by_side",
) -> Response:
    """The follow-up photo aligned onto the previous one: side by side with a difference overlay
    (growth orange, regression blue, the previous outline white), or one panel."""
    with commit_refusals(session, NotFound, ValidationFailed):
        data = lesions.comparison_png(session, actor, lesion_id, case_id, view)
    return Response(content=data, media_type="image/png", headers={"Cache-Control": "no-store"})
