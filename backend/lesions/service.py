"""Lesions over time: which lesion a case is about, follow-ups that are due, and measured change.

Authorization lives in the query, as for cases: a lesion is visible exactly when its patient is
(`visible_patients`), so a clinician sees their clinic's lesions, a dermatologist the lesions of patients
routed to them, an admin none, and nobody an erased patient's. Every read is audited.

The case path's side of lesions (which lesion a case is about, due follow-ups, the change measured at
analysis) is in `backend.lesions.visits`.
"""

from __future__ import annotations

import io
import uuid
from datetime import timedelta
from typing import Literal

import numpy as np
from PIL import Image
from sqlmodel import Session, select
from sqlmodel.sql.expression import SelectOfScalar

from backend.audit.service import record
from backend.cases.models import Case
from backend.cases.service import visible_cases
from backend.core.actor import Actor
from backend.core.clock import utcnow
from backend.core.errors import NotFound, ValidationFailed
from backend.crypto.envelope import Vault
from backend.lesions import change, visits
from backend.lesions.models import Lesion, LesionChange
from backend.lesions.schemas import (
    DueLesion,
    LesionChangeOut,
    LesionCreate,
    LesionDetail,
    LesionOut,
    LesionVisit,
)
from backend.patients.service import get_visible, visible_patients

ComparisonView = Literal["side_by_side", "baseline", "followup", "difference"]


def visible_lesions(actor: Actor) -> SelectOfScalar[Lesion]:
    patients = visible_patients(actor).subquery()
    return select(Lesion).where(Lesion.patient_id.in_(select(patients.c.id)))  # type: ignore[attr-defined]


def png(rgb: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray((np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)).save(out, format="PNG")
    return out.getvalue()


class LesionService:
    def __init__(self, vault: Vault, blobs) -> None:  # type: ignore[no-untyped-def]
        self.vault = vault
        self.blobs = blobs

    # -- records -------------------------------------------------------------------------------
    def create(self, session: Session, actor: Actor, patient_id: uuid.UUID, body: LesionCreate) -> Lesion:
        patient = get_visible(session, actor, patient_id)
        lesion = Lesion(
            patient_id=patient.id, clinic_id=patient.clinic_id, created_by=actor.user.id, **body.model_dump()
        )
        session.add(lesion)
        session.flush()
        self._audit(session, actor, "lesion.create", lesion)
        return lesion

    def for_patient(self, session: Session, actor: Actor, patient_id: uuid.UUID) -> list[Lesion]:
        patient = get_visible(session, actor, patient_id)
        lesions = list(
            session.exec(
                visible_lesions(actor).where(Lesion.patient_id == patient.id).order_by(Lesion.created_at)  # type: ignore[arg-type]
            )
        )
        record(
            session,
            actor.ctx,
            "lesion.list",
            resource_type="patient",
            resource_id=patient.id,
            patient_id=patient.id,
            detail={"items": len(lesions)},
        )
        return lesions

    def get(self, session: Session, actor: Actor, lesion_id: uuid.UUID, *, audit: bool = True) -> Lesion:
        lesion = session.exec(visible_lesions(actor).where(Lesion.id == lesion_id)).first()
        if lesion is None:
            record(
                session,
                actor.ctx,
                "lesion.read",
                outcome="denied",
                resource_type="lesion",
                resource_id=lesion_id,
                reason="not found or not visible",
            )
            raise NotFound(f"lesion {lesion_id} not found")
        if audit:
            self._audit(session, actor, "lesion.read", lesion)
        return lesion

    def detail(self, session: Session, actor: Actor, lesion: Lesion) -> LesionDetail:
        """The lesion with the visits (cases) the caller may see and the change measured at each."""
        cases = list(
            session.exec(visible_cases(actor).where(Case.lesion_id == lesion.id).order_by(Case.created_at))  # type: ignore[arg-type]
        )
        case_ids = [c.id for c in cases]
        changes = (
            list(
                session.exec(
                    select(LesionChange)
                    .where(LesionChange.followup_case_id.in_(case_ids))  # type: ignore[attr-defined]
                    .order_by(LesionChange.created_at)
                )
            )
            if case_ids
            else []
        )
        return LesionDetail(
            **LesionOut.model_validate(lesion).model_dump(),
            visits=[
                LesionVisit(case_id=c.id, state=c.state, triage_level=c.triage_level, created_at=c.created_at)
                for c in cases
            ],
            changes=[LesionChangeOut.model_validate(c) for c in changes],
        )

    def due(self, session: Session, actor: Actor, within_days: int) -> list[DueLesion]:
        """Lesions whose follow-up is due within ``within_days`` (0: due today or overdue), oldest first."""
        now = utcnow()
        rows = list(
            session.exec(
                visible_lesions(actor)
                .where(Lesion.follow_up_due_at.is_not(None))  # type: ignore[union-attr]
                .where(Lesion.follow_up_due_at <= now + timedelta(days=within_days))  # type: ignore[operator]
                .order_by(Lesion.follow_up_due_at, Lesion.id)  # type: ignore[arg-type]
                .limit(500)
            )
        )
        record(session, actor.ctx, "lesion.due", resource_type="lesion", detail={"items": len(rows)})
        return [
            DueLesion(
                **LesionOut.model_validate(row).model_dump(),
                overdue_days=(now - row.follow_up_due_at).days,  # type: ignore[operator]
            )
            for row in rows
        ]

    # -- the aligned pair, for display ---------------------------------------------------------
    def comparison_png(
        self,
        session: Session,
        actor: Actor,
        lesion_id: uuid.UUID,
        followup_case_id: uuid.UUID,
        view: ComparisonView,
    ) -> bytes:
        """The follow-up aligned onto the previous photo, as PNG: both side by side with the difference
        overlay (growth orange, regression blue, the previous outline white), or one of the three."""
        lesion = self.get(session, actor, lesion_id, audit=False)
        case = session.exec(
            visible_cases(actor).where(Case.id == followup_case_id, Case.lesion_id == lesion.id)
        ).first()
        photos = visits.load_followup(session, self.vault, self.blobs, case) if case is not None else None
        if photos is None:
            raise NotFound(
                f"case {followup_case_id} is not a follow-up of lesion {lesion_id} that you can see"
            )
        try:
            _, pair = change.compare(
                Image.open(io.BytesIO(photos.baseline)), Image.open(io.BytesIO(photos.followup))
            )
        except change.NotComparable as exc:
            raise ValidationFailed(f"the comparison could not be made: {exc.reason}") from exc
        self._audit(
            session, actor, "lesion.comparison_view", lesion, detail={"followup_case_id": str(case.id)}
        )
        panels = {
            "baseline": pair.baseline,
            "followup": pair.followup,
            "difference": pair.difference_overlay(),
        }
        if view != "side_by_side":
            return png(panels[view])
        gap = np.ones((pair.baseline.shape[0], 6, 3))
        return png(np.hstack([panels["baseline"], gap, panels["followup"], gap, panels["difference"]]))

    # -- helpers -------------------------------------------------------------------------------
    @staticmethod
    def _audit(
        session: Session, actor: Actor, action: str, lesion: Lesion, detail: dict | None = None
    ) -> None:
        record(
            session,
            actor.ctx,
            action,
            resource_type="lesion",
            resource_id=lesion.id,
            patient_id=lesion.patient_id,
            detail=detail or {},
        )
