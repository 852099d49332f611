"""Erasure by crypto-shredding: destroy the patient's data key, then their blobs.

The steps are ordered so that a crash anywhere leaves nothing readable and the erasure retryable:
1. mark the erasure requested (committed, audited, with the reason);
2. destroy the data key and clear the encrypted identity (from here on nothing can be decrypted);
3. delete the patient's blobs (already unreadable; this frees the space);
4. mark the patient erased (audited).
`resume_pending` completes erasures a crash interrupted (run at start-up and by `dermalink admin`).
Audit events hold only pseudonymous ids, so they remain.

A database backup taken before an erasure still holds the patient's wrapped data key, and the master
key unwraps it. So before step 2 the erasure is also written to the **erasure ledger**, a signed record
per patient kept outside the database (`ErasureLedger`, in the anchor store). At every start-up, before
any request, and in `dermalink admin resume-erasures`, `reapply_ledger` erases again every patient the
ledger names whose data key the (restored) database still holds. Records are authenticated with a key
derived from the master key, so someone who can write the store cannot make the server destroy data
of patients nobody erased.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Callable
from datetime import timedelta

from sqlmodel import Session, select

from backend.audit.service import record
from backend.consent import service as consent
from backend.core.actor import SYSTEM, Actor, AuditContext
from backend.core.clock import utcnow
from backend.core.errors import Conflict, NotFound
from backend.core.logging import log
from backend.crypto.envelope import Vault
from backend.crypto.models import DataKey
from backend.lesions import visits
from backend.patients.models import Patient
from backend.patients.schemas import ErasureOut


def patient_prefix(patient_id: uuid.UUID) -> str:
    return f"patients/{patient_id}/"


LEDGER_PREFIX = "erasures"


class ErasureLedger:
    """Signed erasure records (``erasures/<patient id>.json``) in a store that database restores leave alone."""

    def __init__(self, store, key: bytes, *, lock_days: int = 0) -> None:  # type: ignore[no-untyped-def]
        self.store = store
        self._key = key
        self.lock_days = lock_days

    def _mac(self, patient_id: str, requested_at: str) -> str:
        return hmac.new(self._key, f"{patient_id}|{requested_at}".encode(), hashlib.sha256).hexdigest()

    def record(self, patient_id: uuid.UUID, requested_at) -> None:  # type: ignore[no-untyped-def]
        key = f"{LEDGER_PREFIX}/{patient_id}.json"
        if self.store.exists(key):
            return
        stamp = requested_at.isoformat()
        body = {
            "patient_id": str(patient_id),
            "requested_at": stamp,
            "mac": self._mac(str(patient_id), stamp),
        }
        until = utcnow() + timedelta(days=self.lock_days) if self.lock_days > 0 else None
        self.store.put_retained(key, json.dumps(body, sort_keys=True).encode(), until)

    def entries(self) -> tuple[list[uuid.UUID], list[str]]:
        """The erased patients' ids, and the keys of records that failed authentication (ignored)."""
        erased, forged = [], []
        for key, data in sorted(self.store.iter_retained(LEDGER_PREFIX)):
            try:
                body = json.loads(data)
                patient_id, stamp, mac = str(body["patient_id"]), str(body["requested_at"]), body["mac"]
                if not (isinstance(mac, str) and hmac.compare_digest(mac, self._mac(patient_id, stamp))):
                    raise ValueError("bad MAC")
                erased.append(uuid.UUID(patient_id))
            except (ValueError, KeyError, TypeError):
                forged.append(key)
        return list(dict.fromkeys(erased)), forged


class ErasureService:
    def __init__(self, vault: Vault, blobs, ledger: ErasureLedger | None = None) -> None:  # type: ignore[no-untyped-def]
        self.vault = vault
        self.blobs = blobs
        self.ledger = ledger

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
        if self.ledger is not None:  # first outside the database, so that no restore can undo it
            self.ledger.record(patient.id, patient.erasure_requested_at or utcnow())
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

    def reapply_ledger(self, session_factory: Callable[[], Session]) -> int:
        """Erase again every patient the ledger names whose data key this database still holds (it was
        restored from a backup taken before the erasure). Returns how many were erased again."""
        if self.ledger is None:
            return 0
        erased, forged = self.ledger.entries()
        for key in forged:
            log.error("erasure ledger record fails authentication; ignored", key=key)
        count = 0
        with session_factory() as session:
            for patient_id in erased:
                patient = session.get(Patient, patient_id)
                if patient is None:
                    continue  # the backup predates the patient: nothing of theirs is here
                key_row = session.exec(select(DataKey).where(DataKey.owner_id == patient_id)).first()
                key_alive = key_row is not None and key_row.destroyed_at is None
                if patient.erased_at is not None and not key_alive and patient.identity_sealed is None:
                    continue
                if patient.erasure_requested_at is None:
                    patient.erasure_requested_at = utcnow()
                patient.erased_at = None
                session.add(patient)
                record(
                    session,
                    SYSTEM,
                    "patient.erase_reapplied",
                    resource_type="patient",
                    resource_id=patient.id,
                    patient_id=patient.id,
                    reason="the erasure ledger names this patient: the database was restored from a backup "
                    "taken before the erasure",
                )
                session.commit()
                self._complete(session, SYSTEM, patient)
                count += 1
        return count
