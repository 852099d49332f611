"""De-identified export for research and model improvement, only for patients with consent scope (c)."""

from __future__ import annotations

import csv
import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlmodel import select

from backend.audit.service import record
from backend.cases.models import Answer, Case, CaseImage
from backend.consent import service as consent
from backend.consent.models import Scope
from backend.core.actor import AuditContext
from backend.patients.models import Patient

AGE_BANDS = ((0, 20), (20, 40), (40, 60), (60, 80), (80, 200))


@dataclass(frozen=True)
class ExportSummary:
    patients: int
    images: int
    skipped_patients: int


def _age_band(age: int | None) -> str:
    if age is None:
        return "unknown"
    low, high = next(b for b in AGE_BANDS if b[0] <= age < b[1])
    return f"{low}-{high - 1}" if high < 200 else f"{low}+"


def export_research(services, out: Path) -> ExportSummary:  # type: ignore[no-untyped-def]
    """Write ``images/<random>.jpg`` and ``metadata.csv`` (dermatologist's diagnosis, site, age band, sex)."""
    ctx = AuditContext(actor_role="cli")
    (out / "images").mkdir(parents=True, exist_ok=True)
    exported_patients = skipped = images = 0
    with services.db.session() as session, open(out / "metadata.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "diagnosis", "site", "age_band", "sex"])
        patients = session.exec(select(Patient).where(Patient.erased_at.is_(None))).all()  # type: ignore[union-attr]
        for patient in patients:
            try:
                consent.require(session, patient.id, Scope.research)
            except consent.ConsentRequired:
                skipped += 1
                continue
            count = 0
            for case in session.exec(select(Case).where(Case.patient_id == patient.id)):
                answer = session.exec(select(Answer).where(Answer.case_id == case.id)).first()
                for image in session.exec(select(CaseImage).where(CaseImage.case_id == case.id)):
                    data = services.vault.decrypt(
                        session, patient.id, f"blob:{image.blob_key}", services.blobs.get(image.blob_key)
                    )
                    name = f"{secrets.token_hex(8)}.jpg"  # metadata was stripped at intake
                    (out / "images" / name).write_bytes(data)
                    writer.writerow(
                        [name, answer.diagnosis if answer else "", case.site, _age_band(case.age), case.sex]
                    )
                    count += 1
            record(
                session,
                ctx,
                "research.export",
                resource_type="patient",
                resource_id=patient.id,
                patient_id=patient.id,
                detail={"images": count},
            )
            exported_patients += 1
            images += count
        session.commit()
    return ExportSummary(patients=exported_patients, images=images, skipped_patients=skipped)
