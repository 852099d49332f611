"""Registering patients, reading them under the role/clinic rules, break-glass, and erasure.

Authorization lives in the query (`visible_patients`): a clinician can only select patients of their
own clinic; a dermatologist only patients of cases routed to them; an admin none (break-glass is a
separate, reasoned and audited path). A patient the caller may not see is reported as not found.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid

from sqlalchemy import false
from sqlmodel import Session, select
from sqlmodel.sql.expression import SelectOfScalar

from backend.audit.service import record
from backend.core.actor import Actor
from backend.core.clock import utcnow
from backend.core.errors import Conflict, NotFound, PermissionDenied
from backend.crypto.envelope import Vault
from backend.patients.models import Patient
from backend.patients.schemas import PatientIdentity, PatientUpdate
from backend.users.models import Role

IDENTITY_RECORD = "patient:identity"


def mrn_index(key: bytes, clinic_id: uuid.UUID, mrn: str) -> str:
    normalised = "".join(mrn.split()).upper()
    return hmac.new(key, f"{clinic_id}|{normalised}".encode(), hashlib.sha256).hexdigest()


def _dermatologist_patients(user_id: uuid.UUID):  # type: ignore[no-untyped-def]
    """Patients of cases routed to this dermatologist (the cases package owns the rule; imported here,
    not at the top, because the cases package imports this module)."""
    from backend.cases.service import patients_routed_to

    return patients_routed_to(user_id)


def visible_patients(actor: Actor) -> SelectOfScalar[Patient]:
    query = select(Patient).where(Patient.erased_at.is_(None))  # type: ignore[union-attr]
    if actor.role is Role.clinician and actor.user.clinic_id is not None:
        return query.where(Patient.clinic_id == actor.user.clinic_id)
    if actor.role is Role.dermatologist:
        return query.where(Patient.id.in_(_dermatologist_patients(actor.user.id)))  # type: ignore[attr-defined]
    return query.where(false())


def get_visible(session: Session, actor: Actor, patient_id: uuid.UUID) -> Patient:
    patient = session.exec(visible_patients(actor).where(Patient.id == patient_id)).first()
    if patient is None:
        raise _not_visible(session, actor, patient_id)
    return patient


def visible_clinic_id(session: Session, actor: Actor, patient_id: uuid.UUID) -> uuid.UUID:
    """`get_visible` (the same rule, the same audited refusal) for a caller that needs only the patient's
    clinic: one column instead of the whole row (a submission needs no more)."""
    query = visible_patients(actor).where(Patient.id == patient_id).with_only_columns(Patient.clinic_id)
    clinic_id = session.exec(query).first()
    if clinic_id is None:
        raise _not_visible(session, actor, patient_id)
    return clinic_id


def _not_visible(session: Session, actor: Actor, patient_id: uuid.UUID) -> NotFound:
    record(
        session,
        actor.ctx,
        "patient.read",
        outcome="denied",
        resource_type="patient",
        resource_id=patient_id,
        patient_id=patient_id,
        reason="not found or not visible",
    )
    return NotFound(f"patient {patient_id} not found")


class PatientService:
    def __init__(self, vault: Vault, blind_index_key: bytes) -> None:
        self.vault = vault
        self._index_key = blind_index_key

    def identity(self, session: Session, patient: Patient) -> PatientIdentity:
        plain = self.vault.decrypt(session, patient.id, IDENTITY_RECORD, patient.identity_sealed or b"")
        return PatientIdentity.model_validate_json(plain)

    def _seal_identity(self, session: Session, patient: Patient, identity: PatientIdentity) -> None:
        data = json.dumps(identity.model_dump(mode="json")).encode()
        patient.identity_sealed = self.vault.encrypt(session, patient.id, IDENTITY_RECORD, data)
        patient.mrn_index = mrn_index(self._index_key, patient.clinic_id, identity.medical_record_number)

    def create(self, session: Session, actor: Actor, identity: PatientIdentity) -> Patient:
        if actor.user.clinic_id is None:
            raise PermissionDenied("your account belongs to no clinic; ask an admin to assign one")
        index = mrn_index(self._index_key, actor.user.clinic_id, identity.medical_record_number)
        existing = session.exec(
            select(Patient.id).where(Patient.clinic_id == actor.user.clinic_id, Patient.mrn_index == index)
        ).first()
        if existing is not None:
            raise Conflict(f"a patient with this medical record number already exists: {existing}")
        patient = Patient(clinic_id=actor.user.clinic_id, created_by=actor.user.id)
        session.add(patient)
        session.flush()
        self.vault.create_data_key(session, patient.id)
        self._seal_identity(session, patient, identity)
        session.add(patient)
        record(
            session,
            actor.ctx,
            "patient.create",
            resource_type="patient",
            resource_id=patient.id,
            patient_id=patient.id,
        )
        return patient

    def find_by_mrn(self, session: Session, actor: Actor, mrn: str) -> list[Patient]:
        if actor.role is not Role.clinician or actor.user.clinic_id is None:
            return []
        index = mrn_index(self._index_key, actor.user.clinic_id, mrn)
        found = list(session.exec(visible_patients(actor).where(Patient.mrn_index == index)))
        record(
            session,
            actor.ctx,
            "patient.search",
            resource_type="patient",
            detail={"by": "mrn", "found": len(found)},
        )
        return found

    def read(self, session: Session, actor: Actor, patient_id: uuid.UUID) -> tuple[Patient, PatientIdentity]:
        patient = get_visible(session, actor, patient_id)
        identity = self.identity(session, patient)
        record(
            session,
            actor.ctx,
            "patient.read",
            resource_type="patient",
            resource_id=patient.id,
            patient_id=patient.id,
        )
        return patient, identity

    def update(
        self, session: Session, actor: Actor, patient_id: uuid.UUID, changes: PatientUpdate
    ) -> tuple[Patient, PatientIdentity]:
        patient = get_visible(session, actor, patient_id)
        identity = self.identity(session, patient).model_copy(update=changes.model_dump(exclude_unset=True))
        self._seal_identity(session, patient, identity)
        patient.updated_at = utcnow()
        session.add(patient)
        record(
            session,
            actor.ctx,
            "patient.update",
            resource_type="patient",
            resource_id=patient.id,
            patient_id=patient.id,
            detail={"fields": sorted(changes.model_dump(exclude_unset=True))},
        )
        return patient, identity

    def break_glass(
        self, session: Session, actor: Actor, patient_id: uuid.UUID, reason: str
    ) -> tuple[Patient, PatientIdentity]:
        """An admin reads a patient's identity for a stated reason; always audited."""
        patient = session.exec(
            select(Patient).where(Patient.id == patient_id, Patient.erased_at.is_(None))  # type: ignore[union-attr]
        ).first()
        if patient is None:
            raise NotFound(f"patient {patient_id} not found")
        record(
            session,
            actor.ctx,
            "patient.break_glass",
            resource_type="patient",
            resource_id=patient.id,
            patient_id=patient.id,
            reason=reason,
        )
        return patient, self.identity(session, patient)
