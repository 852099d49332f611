"""Erasure by crypto-shredding: destroy the patient's data key, then their blobs.

The steps are ordered so that a crash anywhere leaves nothing readable and the erasure retryable:
1. mark the erasure requested (committed, audited, with the reason);
2. destroy the data key and clear the encrypted identity (from here on nothing can be decrypted);
3. delete the patient's blobs (already unreadable; this frees the space);
4. mark the patient erased (audited).
`resume_pending` completes erasures a crash interrupted (run at start-up and by `dermalink admin`).
Audit events hold only pseudonymous ids, so they remain.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from sqlmodel import Session, select

from backend.audit.service import record
from backend.consent import service as consent
from backend.core.actor import SYSTEM, Actor, AuditContext
from backend.core.clock import utcnow
from backend.core.errors import Conflict, NotFound
from backend.crypto.envelope import Vault
from backend.lesions import visits
from backend.patients.models import Patient
from backend.patients.schemas import ErasureOut


def patient_prefix(patient_id: uuid.UUID) -> str:
    return f"patients/{patient_id}/"


class ErasureService:
    def __init__(self, vault: Vault, blobs) -> None:  # type: ignore[no-untyped-def]
        self.vault = vault
        self.blobs = blobs

    def erase(
        self, session: Session, actor: Actor, patient_id: uuid.UUID, *, reason: str, basis: str
    ) -> ErasureOut:
        patient = session.get(Patient, patient_id)
        if patient is None:
            raise NotFound(f"patient {patient_id} not found")
        if patient.erased_at is not None:
            return ErasureOut(patient_id=patient.id, erased_at=patient.erased_at, blobs_deleted=0)
        if basis == "consent_withdrawn" and patient.erasure_requested_at is None:
            active = [s.value for s, (grant, _) in consent.status(session, patient.id).items() if grant]
            if active:
                raise Conflict(
                    f"the patient still consents to {', '.join(active)}: withdraw those scopes first, "
                    "or erase on the basis 'patient_request'"
                )
        if patient.erasure_requested_at is None:
            patient.erasure_requested_at = utcnow()
            session.add(patient)
            record(
                session,
                actor.ctx,
                "patient.erase_requested",
                resource_type="patient",
                resource_id=patient.id,
                patient_id=patient.id,
                reason=reason,
                detail={"basis": basis},
            )
            session.commit()
        return self._complete(session, actor.ctx, patient)

    def _complete(self, session: Session, ctx: AuditContext, patient: Patient) -> ErasureOut:
        self.vault.destroy(session, patient.id)
        visits.erase_patient(session, patient.id)
        patient.identity_sealed, patient.mrn_index = None, None
        session.add(patient)
        session.commit()
        deleted = self.blobs.delete_prefix(patient_prefix(patient.id))
        patient.erased_at = utcnow()
        session.add(patient)
        record(
            session,
            ctx,
            "patient.erase",
            resource_type="patient",
            resource_id=patient.id,
            patient_id=patient.id,
            detail={"blobs_deleted": deleted},
        )
        session.commit()
        return ErasureOut(patient_id=patient.id, erased_at=patient.erased_at, blobs_deleted=deleted or 0)

    def resume_pending(self, session_factory: Callable[[], Session]) -> int:
        with session_factory() as session:
            pending = list(
                session.exec(
                    select(Patient).where(
                        Patient.erasure_requested_at.is_not(None), Patient.erased_at.is_(None)
                    )
                )
            )  # type: ignore[union-attr]
            for patient in pending:
                self._complete(session, SYSTEM, patient)
            return len(pending)
