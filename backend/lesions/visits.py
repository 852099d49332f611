"""The lesion side of the case path: which lesion a case is about, follow-ups that become due, erasure,
and the change measured when a follow-up is analysed.

These depend only on the tables, so that the case service and the analysis job can call them without
importing the lesion routes' service. The analysis job calls `load_followup` inside its short read (it
decrypts the previous visit's first photo and the new one), `measure` outside any transaction (a second or
two of CPU in `backend.lesions.change`), and `store_change` with the results; a significant change feeds
the triage rule ``lesion_changed``.
"""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from PIL import Image
from sqlalchemy import delete, update
from sqlmodel import Session, select

from backend.cases.models import AnalysisResult, Case, CaseImage
from backend.core.clock import utcnow
from backend.core.errors import ValidationFailed
from backend.crypto.envelope import Vault
from backend.lesions import change
from backend.lesions.models import Lesion, LesionChange


@dataclass(frozen=True)
class FollowupPhotos:
    """The two photos a follow-up is compared on (decrypted for the analysis job only)."""

    lesion_id: uuid.UUID
    baseline_case_id: uuid.UUID
    followup_case_id: uuid.UUID
    baseline: bytes
    followup: bytes
    baseline_probabilities: dict[str, float]


@dataclass(frozen=True)
class Measured:
    photos: FollowupPhotos
    status: Literal["measured", "not_comparable"]
    reason: str | None = None
    measurements: dict | None = None

    @property
    def triage_evidence(self) -> dict | None:
        """What the triage rule ``lesion_changed`` reads: the score and the significant measures."""
        if self.status != "measured" or self.measurements is None:
            return None
        return {
            "change_score": self.measurements["change_score"],
            "significant": list(self.measurements["significant"]),
        }


def check_followup(session: Session, patient_id: uuid.UUID, lesion_id: uuid.UUID | None) -> None:
    """A follow-up must name one of this patient's lesions (checked before any image work)."""
    if lesion_id is None:
        return
    lesion = session.get(Lesion, lesion_id)
    if lesion is None or lesion.patient_id != patient_id:
        raise ValidationFailed(f"lesion_id: {lesion_id} is not one of this patient's lesions")


def for_submission(
    session: Session,
    patient_id: uuid.UUID,
    clinic_id: uuid.UUID,
    lesion_id: uuid.UUID | None,
    site: str,
    created_by: uuid.UUID,
) -> Lesion:
    """The lesion a new case is about (added to the submission's transaction, not flushed): the given
    one, whose due follow-up has now arrived, or a new one at ``site``. `check_followup` has vetted
    ``lesion_id``."""
    if lesion_id is None:
        lesion = Lesion(patient_id=patient_id, clinic_id=clinic_id, site=site, created_by=created_by)
    else:
        lesion = session.get(Lesion, lesion_id)
        if lesion is None or lesion.patient_id != patient_id:  # erased meanwhile
            raise ValidationFailed(f"lesion_id: {lesion_id} is not one of this patient's lesions")
        lesion.follow_up_due_at = None
    session.add(lesion)
    return lesion


def schedule_follow_up(session: Session, case: Case, weeks: int | None) -> None:
    """A dermatologist asked to see the lesion again in ``weeks``: it becomes due then."""
    if weeks is None or case.lesion_id is None:
        return
    lesion = session.get(Lesion, case.lesion_id)
    if lesion is not None:
        lesion.follow_up_due_at = utcnow() + timedelta(weeks=weeks)
        session.add(lesion)


def erase_patient(session: Session, patient_id: uuid.UUID) -> None:
    """Erasure removes the patient's lesions and their measurements (their cases keep no link to them)."""
    lesion_ids = select(Lesion.id).where(Lesion.patient_id == patient_id)
    session.exec(delete(LesionChange).where(LesionChange.lesion_id.in_(lesion_ids)))  # type: ignore[call-overload, attr-defined]
    session.exec(update(Case).where(Case.patient_id == patient_id).values(lesion_id=None))  # type: ignore[call-overload]
    session.exec(delete(Lesion).where(Lesion.patient_id == patient_id))  # type: ignore[call-overload]


def first_image(session: Session, case: Case) -> CaseImage | None:
    return session.exec(
        select(CaseImage).where(CaseImage.case_id == case.id).order_by(CaseImage.position)  # type: ignore[arg-type]
    ).first()


def load_followup(session: Session, vault: Vault, blobs, case: Case) -> FollowupPhotos | None:  # type: ignore[no-untyped-def]
    """The previous visit's first photo and this case's, when ``case`` follows up a lesion."""
    if case.lesion_id is None:
        return None
    previous = session.exec(
        select(Case)
        .where(Case.lesion_id == case.lesion_id, Case.id != case.id, Case.created_at <= case.created_at)  # type: ignore[operator]
        .order_by(Case.created_at.desc())  # type: ignore[attr-defined]
    ).first()
    if previous is None:
        return None
    before, after = first_image(session, previous), first_image(session, case)
    if before is None or after is None:
        return None
    result = session.exec(select(AnalysisResult).where(AnalysisResult.image_id == before.id)).first()

    def decrypt(image: CaseImage) -> bytes:
        return vault.decrypt(session, case.patient_id, f"blob:{image.blob_key}", blobs.get(image.blob_key))

    return FollowupPhotos(
        lesion_id=case.lesion_id,
        baseline_case_id=previous.id,
        followup_case_id=case.id,
        baseline=decrypt(before),
        followup=decrypt(after),
        baseline_probabilities=result.probabilities if result else {},
    )


def measure(photos: FollowupPhotos) -> Measured:
    """Compare the two photos; a pair that cannot be aligned gives its reason and no numbers."""
    try:
        result, _ = change.compare(
            Image.open(io.BytesIO(photos.baseline)), Image.open(io.BytesIO(photos.followup))
        )
    except change.NotComparable as exc:
        return Measured(photos, "not_comparable", reason=exc.reason)
    return Measured(photos, "measured", measurements=result.as_dict())


def store_change(session: Session, measured: Measured, probabilities: dict[str, float]) -> LesionChange:
    """Write (or rewrite, when an analysis is retried) the change measured for the follow-up."""
    photos = measured.photos
    row = session.exec(
        select(LesionChange).where(LesionChange.followup_case_id == photos.followup_case_id)
    ).first()
    if row is None:
        row = LesionChange(
            lesion_id=photos.lesion_id,
            baseline_case_id=photos.baseline_case_id,
            followup_case_id=photos.followup_case_id,
            status=measured.status,
        )
    row.status, row.reason = measured.status, measured.reason
    row.measurements = measured.measurements or {}
    labels = sorted(set(probabilities) | set(photos.baseline_probabilities))
    row.probability_change = (
        {k: round(probabilities.get(k, 0.0) - photos.baseline_probabilities.get(k, 0.0), 4) for k in labels}
        if photos.baseline_probabilities
        else {}
    )
    session.add(row)
    return row
