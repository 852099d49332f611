from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from backend.core.schemas import RequestBody, ResponseBody
from backend.inference.cam import LABEL as CAM_LABEL
from backend.lesions.schemas import LesionChangeOut, Site

Diagnosis = Literal["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc", "other"]
Management = Literal["reassure", "monitor", "excise_or_biopsy", "urgent_referral"]

DISCLAIMER = (
    "The AI result supports, and does not replace, a clinician's diagnosis. It was trained on dermoscopic "
    "images of 7 lesion types (HAM10000) and can be wrong, especially for other lesion types, other image "
    "types and skin types under-represented in its training data."
)

HEATMAP_LABEL = CAM_LABEL


class LesionHistory(RequestBody):
    new: bool = False
    changed: bool = False
    bleeding: bool = False
    itching: bool = False


class CaseCreate(RequestBody):
    """The ``metadata`` part of the multipart submission (the images are the ``images`` parts)."""

    patient_id: uuid.UUID
    lesion_id: uuid.UUID | None = Field(
        default=None, description="A follow-up photo of this lesion of the patient; omit for a new lesion"
    )
    age: int | None = Field(default=None, ge=0, le=120)
    sex: Literal["male", "female", "unknown"] = "unknown"
    site: Site = "unknown"
    history: LesionHistory = Field(default_factory=LesionHistory)
    concern: Literal["low", "medium", "high"] = "low"
    wants_specialist: bool = False
    notes: str | None = Field(default=None, max_length=2000)


class AnswerCreate(RequestBody):
    diagnosis: Diagnosis
    diagnosis_text: str | None = Field(
        default=None, max_length=300, description="Required when diagnosis is other"
    )
    management: Management
    follow_up_weeks: int | None = Field(default=None, ge=1, le=104, description="Required for monitor")
    note: str | None = Field(default=None, max_length=4000)


class ImageOut(ResponseBody):
    id: uuid.UUID
    width: int
    height: int
    quality_ok: bool
    quality: dict


class ResultOut(ResponseBody):
    image_id: uuid.UUID
    probabilities: dict[str, float]
    top_label: str
    top_probability: float
    malignant_probability: float
    model_name: str
    model_version: str
    inference_ms: float
    heatmap_url: str | None = Field(
        default=None,
        description="The image's heatmap (PNG): the top class's class-activation map over the image, "
        f"labelled '{HEATMAP_LABEL}' (see `heatmap_label`); null when the model gave none",
    )

    @model_validator(mode="before")
    @classmethod
    def _heatmap_url(cls, data: object) -> object:
        """From an `AnalysisResult` row: the route of its heatmap when it has one (never the blob key)."""
        if isinstance(data, dict) or not hasattr(data, "heatmap_blob_key"):
            return data
        fields = {name: getattr(data, name) for name in cls.model_fields if hasattr(data, name)}
        if data.heatmap_blob_key or getattr(data, "class_map", None):
            fields["heatmap_url"] = f"/api/v1/cases/{data.case_id}/images/{data.image_id}/heatmap"
        return fields


class AnalysisOut(BaseModel):
    status: str  # pending | running | done | failed
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    results: list[ResultOut]
    disclaimer: str = DISCLAIMER
    heatmap_label: str = Field(
        default=HEATMAP_LABEL, description="Show this with every heatmap: it explains, it does not diagnose"
    )


class TriageOut(BaseModel):
    level: str | None
    rule: str | None
    detail: dict
    sharing_consent_missing: bool
    message: str | None


class AnswerOut(ResponseBody):
    dermatologist_id: uuid.UUID
    diagnosis: str
    diagnosis_text: str | None
    management: str
    follow_up_weeks: int | None
    note: str | None = None  # decrypted for the reader
    created_at: datetime


class TransitionOut(ResponseBody):
    from_state: str | None
    to_state: str
    actor_id: uuid.UUID | None
    actor_role: str | None
    at: datetime


class CaseOut(BaseModel):
    id: uuid.UUID
    patient_id: uuid.UUID
    state: str
    version: int
    age: int | None
    sex: str | None
    site: str | None
    history: dict
    concern: str
    wants_specialist: bool
    notes: str | None
    images: list[ImageOut]
    analysis: AnalysisOut
    triage: TriageOut
    claimed_by: uuid.UUID | None
    claim_expires_at: datetime | None
    answer: AnswerOut | None
    transitions: list[TransitionOut]
    lesion_id: uuid.UUID | None = None
    lesion_change: LesionChangeOut | None = Field(
        default=None, description="For a follow-up: the change measured against the lesion's previous photo"
    )
    created_at: datetime
    updated_at: datetime


class CaseSummary(BaseModel):
    id: uuid.UUID
    patient_id: uuid.UUID
    state: str
    triage_level: str | None
    created_at: datetime
    updated_at: datetime


class QueueItem(BaseModel):
    case_id: uuid.UUID
    triage_level: str
    triage_rule: str | None
    waiting_since: datetime
    age: int | None
    sex: str | None
    site: str | None
    concern: str
    ai_top_label: str | None
    ai_top_probability: float | None
    image_count: int
    disclaimer: str = DISCLAIMER
