from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from backend.core.schemas import RequestBody, ResponseBody

# HAM10000's `localization` vocabulary.
Site = Literal[
    "abdomen",
    "acral",
    "back",
    "chest",
    "ear",
    "face",
    "foot",
    "genital",
    "hand",
    "lower extremity",
    "neck",
    "scalp",
    "trunk",
    "upper extremity",
    "unknown",
]
CHANGE_DISCLAIMER = (
    "Measured from two photos; other light, angle or distance can move every number. A change worth a "
    "specialist's look, not a diagnosis."
)


class LesionCreate(RequestBody):
    site: Site = "unknown"
    label: str = Field(default="", max_length=60, description="Where exactly, e.g. 'left shoulder, upper'")
    body_view: Literal["front", "back"] | None = None
    body_x: float | None = Field(default=None, ge=0, le=1, description="Across the body map's outline")
    body_y: float | None = Field(default=None, ge=0, le=1, description="Down the body map's outline")


class LesionChangeOut(ResponseBody):
    lesion_id: uuid.UUID
    baseline_case_id: uuid.UUID
    followup_case_id: uuid.UUID
    status: Literal["measured", "not_comparable"]
    reason: str | None
    measurements: dict
    probability_change: dict
    created_at: datetime
    disclaimer: str = CHANGE_DISCLAIMER


class LesionVisit(BaseModel):
    case_id: uuid.UUID
    state: str
    triage_level: str | None
    created_at: datetime


class LesionOut(ResponseBody):
    id: uuid.UUID
    patient_id: uuid.UUID
    site: str
    label: str
    body_view: str | None
    body_x: float | None
    body_y: float | None
    follow_up_due_at: datetime | None
    created_at: datetime


class LesionDetail(LesionOut):
    visits: list[LesionVisit]
    changes: list[LesionChangeOut]


class DueLesion(LesionOut):
    overdue_days: int = Field(description="Days past the due date; negative when due in the future")
