"""Cases, their images, analysis jobs and results, state transitions and dermatologists' answers."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, LargeBinary, UniqueConstraint
from sqlmodel import Column, Field, SQLModel

from backend.core.clock import utcnow
from backend.core.defaults import empty_dict, new_id


class CaseState(StrEnum):
    received = "received"
    analysing = "analysing"
    analysed = "analysed"
    awaiting_specialist = "awaiting_specialist"
    answered = "answered"
    closed = "closed"


class TriageLevel(StrEnum):
    urgent = "urgent"
    review = "review"
    routine = "routine"


class Case(SQLModel, table=True):
    __tablename__ = "clinical_case"
    __table_args__ = (UniqueConstraint("created_by", "idempotency_key", name="uq_case_idempotency"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    patient_id: uuid.UUID = Field(foreign_key="patient.id", index=True)
    clinic_id: uuid.UUID = Field(foreign_key="clinic.id", index=True)
    lesion_id: uuid.UUID | None = Field(default=None, foreign_key="lesion.id", index=True)  # None once erased
    created_by: uuid.UUID = Field(foreign_key="user_account.id")
    idempotency_key: str = Field(max_length=100)
    request_hash: str = Field(max_length=64)  # a retry with the same key must carry the same submission
    state: str = Field(default=CaseState.received, max_length=24, index=True)
    version: int = 1  # bumped on every change; the ETag

    # Clinical context (no identifying fields; free-text notes are encrypted).
    age: int | None = None
    sex: str | None = Field(default=None, max_length=10)
    site: str | None = Field(default=None, max_length=30)
    history: dict = Field(default_factory=empty_dict, sa_column=Column(JSON, nullable=False))
    concern: str = Field(default="low", max_length=10)
    wants_specialist: bool = False
    notes_sealed: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))

    # Triage.
    triage_level: str | None = Field(default=None, max_length=10, index=True)
    triage_rule: str | None = Field(default=None, max_length=60)
    triage_detail: dict = Field(default_factory=empty_dict, sa_column=Column(JSON, nullable=False))
    sharing_consent_missing: bool = False

    # Consultation queue.
    queued_at: datetime | None = Field(default=None, index=True)
    claimed_by: uuid.UUID | None = Field(default=None, foreign_key="user_account.id", index=True)
    claim_expires_at: datetime | None = None
    answered_by: uuid.UUID | None = Field(default=None, foreign_key="user_account.id", index=True)

    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class CaseImage(SQLModel, table=True):
    __tablename__ = "case_image"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    case_id: uuid.UUID = Field(foreign_key="clinical_case.id", index=True)
    position: int = 0
    blob_key: str = Field(max_length=300)
    sha256: str = Field(max_length=64)  # of the sanitised image
    media_type: str = Field(max_length=30)
    width: int
    height: int
    quality_ok: bool = True
    quality: dict = Field(default_factory=empty_dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class AnalysisJob(SQLModel, table=True):
    """A persisted analysis job: committed with the case, so a crash can delay it but never lose it."""

    __tablename__ = "analysis_job"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    case_id: uuid.UUID = Field(foreign_key="clinical_case.id", unique=True)
    status: str = Field(default="pending", max_length=12, index=True)  # pending | running | done | failed
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, index=True)
    lease_expires_at: datetime | None = None  # a worker that dies loses its lease; the job runs again
    last_error: str | None = Field(default=None, max_length=1000)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class AnalysisResult(SQLModel, table=True):
    __tablename__ = "analysis_result"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    case_id: uuid.UUID = Field(foreign_key="clinical_case.id", index=True)
    image_id: uuid.UUID = Field(foreign_key="case_image.id", unique=True)
    probabilities: dict = Field(sa_column=Column(JSON, nullable=False))
    top_label: str = Field(max_length=20)
    top_probability: float
    malignant_probability: float
    model_name: str = Field(max_length=100)
    model_version: str = Field(max_length=40)
    inference_ms: float
    # Where the model looked, not a diagnosis. ``class_map``: the top class's class-activation map (7x7,
    # rows of floats) as the model gave it; None: the model has no class maps. ``heatmap_blob_key``: its
    # colour overlay on the image (PNG, encrypted like the images), drawn when somebody first opens it.
    class_map: list | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    heatmap_blob_key: str | None = Field(default=None, max_length=300)
    created_at: datetime = Field(default_factory=utcnow)


class CaseTransition(SQLModel, table=True):
    __tablename__ = "case_transition"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    case_id: uuid.UUID = Field(foreign_key="clinical_case.id", index=True)
    from_state: str | None = Field(default=None, max_length=24)
    to_state: str = Field(max_length=24)
    actor_id: uuid.UUID | None = Field(default=None, foreign_key="user_account.id")
    actor_role: str | None = Field(default=None, max_length=20)
    note: str | None = Field(default=None, max_length=300)
    at: datetime = Field(default_factory=utcnow)


class Answer(SQLModel, table=True):
    __tablename__ = "case_answer"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    case_id: uuid.UUID = Field(foreign_key="clinical_case.id", unique=True)
    dermatologist_id: uuid.UUID = Field(foreign_key="user_account.id")
    diagnosis: str = Field(max_length=20)  # one of the 7 classes, or "other"
    diagnosis_text: str | None = Field(default=None, max_length=300)
    management: str = Field(max_length=20)  # reassure | monitor | excise_or_biopsy | urgent_referral
    follow_up_weeks: int | None = None
    note_sealed: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    created_at: datetime = Field(default_factory=utcnow)
