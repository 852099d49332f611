"""/api/v1/patients: registration, look-up, identity, consent, break-glass and erasure."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, status

from backend.audit.service import record
from backend.consent import service as consent
from backend.consent.schemas import (
    ConsentCreate,
    ConsentEventOut,
    ConsentStatus,
    ConsentWithdraw,
    ScopeStatus,
)
from backend.consent.service import ConsentRequired
from backend.core.errors import Conflict, NotFound, PreconditionFailed
from backend.core.openapi import error_responses
from backend.deps import AdminActor, ClinicalActor, ClinicianActor, UnitOfWork, commit_refusals
from backend.patients.erasure import ErasureService
from backend.patients.models import Patient
from backend.patients.schemas import (
    ErasureBody,
    ErasureOut,
    PatientIdentity,
    PatientOut,
    PatientUpdate,
    ReasonBody,
)
from backend.patients.service import PatientService, get_visible

router = APIRouter(
    prefix="/api/v1/patients",
    tags=["patients"],
    responses=error_responses(NotFound, Conflict, ConsentRequired, PreconditionFailed),
)


async def get_patient_service(request: Request) -> PatientService:
    return request.app.state.patients


async def get_erasure_service(request: Request) -> ErasureService:
    return request.app.state.erasure


PatientServiceDep = Annotated[PatientService, Depends(get_patient_service)]
ErasureServiceDep = Annotated[ErasureService, Depends(get_erasure_service)]


def _out(patient: Patient, identity: PatientIdentity) -> PatientOut:
    return PatientOut(
        id=patient.id, clinic_id=patient.clinic_id, created_at=patient.created_at, identity=identity
    )


def _visible_or_404(session, actor, patient_id: uuid.UUID) -> Patient:  # type: ignore[no-untyped-def]
    with commit_refusals(session, NotFound):  # the denied attempt stays in the audit trail
        return get_visible(session, actor, patient_id)


@router.post("", response_model=PatientOut, status_code=status.HTTP_201_CREATED)
def register_patient(
    body: PatientIdentity, actor: ClinicianActor, session: UnitOfWork, patients: PatientServiceDep
) -> PatientOut:
    """Register a patient of your clinic. Identifying fields are stored encrypted."""
    patient = patients.create(session, actor, body)
    return _out(patient, body)


@router.get("", response_model=list[PatientOut])
def find_patients(
    actor: ClinicianActor,
    session: UnitOfWork,
    patients: PatientServiceDep,
    mrn: Annotated[str, Query(min_length=1, max_length=64, description="Medical record number")],
) -> list[PatientOut]:
    """Find a patient of your clinic by medical record number (through a keyed hash, not decryption)."""
    found = patients.find_by_mrn(session, actor, mrn)
    result = [_out(p, patients.identity(session, p)) for p in found]
    return result


@router.get("/{patient_id}", response_model=PatientOut)
def read_patient(
    patient_id: uuid.UUID, actor: ClinicalActor, session: UnitOfWork, patients: PatientServiceDep
) -> PatientOut:
    """Clinicians read patients of their clinic; dermatologists those of cases routed to them.
    Admins cannot (they use break-glass)."""
    patient = _visible_or_404(session, actor, patient_id)
    patient, identity = patients.read(session, actor, patient.id)
    return _out(patient, identity)


@router.patch("/{patient_id}", response_model=PatientOut)
def update_patient(
    patient_id: uuid.UUID,
    body: PatientUpdate,
    actor: ClinicianActor,
    session: UnitOfWork,
    patients: PatientServiceDep,
) -> PatientOut:
    _visible_or_404(session, actor, patient_id)
    patient, identity = patients.update(session, actor, patient_id, body)
    return _out(patient, identity)


@router.post("/{patient_id}/break-glass", response_model=PatientOut)
def break_glass(
    patient_id: uuid.UUID,
    body: ReasonBody,
    actor: AdminActor,
    session: UnitOfWork,
    patients: PatientServiceDep,
) -> PatientOut:
    """Emergency access for an admin: states a reason, returns the identity, and is always audited."""
    patient, identity = patients.break_glass(session, actor, patient_id, body.reason)
    return _out(patient, identity)


@router.post("/{patient_id}/erase", response_model=ErasureOut)
def erase_patient(
    patient_id: uuid.UUID,
    body: ErasureBody,
    actor: AdminActor,
    session: UnitOfWork,
    erasure: ErasureServiceDep,
) -> ErasureOut:
    """Crypto-shred a patient: destroy their data key and blobs. Audit events (no identifying data) remain.
    Allowed after the patient withdrew consent, or on the patient's documented request."""
    return erasure.erase(session, actor, patient_id, reason=body.reason, basis=body.basis)


# -- consent ---------------------------------------------------------------------------------------
def _status(session, patient: Patient) -> ConsentStatus:  # type: ignore[no-untyped-def]
    scopes = []
    for scope, (active, needs_reconsent) in consent.status(session, patient.id).items():
        scopes.append(
            ScopeStatus(
                scope=scope,
                active=active is not None,
                needs_reconsent=needs_reconsent,
                document_id=active.document.id if active else None,
                document_version=active.document.version if active else None,
            )
        )
    events = [
        ConsentEventOut.model_validate(e).model_copy(update={"has_signature": bool(e.signature_blob)})
        for e in consent.history(session, patient.id)
    ]
    return ConsentStatus(patient_id=patient.id, scopes=scopes, history=events)


@router.get("/{patient_id}/consents", response_model=ConsentStatus)
def consent_status(patient_id: uuid.UUID, actor: ClinicalActor, session: UnitOfWork) -> ConsentStatus:
    """Which scopes are active now, and the full, never-rewritten history."""
    patient = _visible_or_404(session, actor, patient_id)
    result = _status(session, patient)
    record(
        session,
        actor.ctx,
        "consent.read",
        resource_type="patient",
        resource_id=patient.id,
        patient_id=patient.id,
    )
    return result


@router.post("/{patient_id}/consents", response_model=ConsentStatus, status_code=status.HTTP_201_CREATED)
def record_consent(
    patient_id: uuid.UUID,
    body: ConsentCreate,
    request: Request,
    actor: ClinicianActor,
    session: UnitOfWork,
    patients: PatientServiceDep,
) -> ConsentStatus:
    """Record the patient's consent to one or more scopes of a published consent version."""
    patient = _visible_or_404(session, actor, patient_id)
    blob_key = None
    if body.signature_png_base64:
        image = consent.decode_signature(body.signature_png_base64)
        blob_key = f"patients/{patient.id}/signatures/{uuid.uuid4()}.bin"
        ciphertext = patients.vault.encrypt(session, patient.id, f"blob:{blob_key}", image)
        request.app.state.blobs.put(blob_key, ciphertext)  # stored before the consent that names it commits
    consent.grant(session, actor, patient, body, blob_key)
    return _status(session, patient)


@router.post("/{patient_id}/consents/withdraw", response_model=ConsentStatus)
def withdraw_consent(
    patient_id: uuid.UUID, body: ConsentWithdraw, actor: ClinicianActor, session: UnitOfWork
) -> ConsentStatus:
    """Withdraw one or more scopes. Takes effect at once; the history keeps the earlier grant."""
    patient = _visible_or_404(session, actor, patient_id)
    consent.withdraw(session, actor, patient, body.scopes, body.reason)
    return _status(session, patient)
