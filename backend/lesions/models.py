"""Lesions followed over time, and the measured change between two photos of one lesion."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON
from sqlmodel import Column, Field, SQLModel

from backend.core.clock import utcnow
from backend.core.defaults import empty_dict, new_id


class Lesion(SQLModel, table=True):
    """One skin lesion of a patient. Every case is about one lesion; a follow-up case adds a visit."""

    __tablename__ = "lesion"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    patient_id: uuid.UUID = Field(foreign_key="patient.id", index=True)
    clinic_id: uuid.UUID = Field(foreign_key="clinic.id", index=True)
    site: str = Field(default="unknown", max_length=30)  # the cases' `Site` vocabulary
    label: str = Field(default="", max_length=60)  # e.g. "left shoulder, upper"; no identifying details
    body_view: str | None = Field(default=None, max_length=5)  # front | back (the body map's outline)
    body_x: float | None = None  # 0..1 across the outline
    body_y: float | None = None  # 0..1 down the outline
    follow_up_due_at: datetime | None = Field(default=None, index=True)
    created_by: uuid.UUID | None = Field(default=None, foreign_key="user_account.id")
    created_at: datetime = Field(default_factory=utcnow)


class LesionChange(SQLModel, table=True):
    """The change from a lesion's previous photo to a follow-up's, measured when the follow-up is analysed.

    ``status`` is ``measured`` (``measurements`` hold the numbers) or ``not_comparable`` (``reason`` says
    why in plain words: no number is stored for photos that could not be aligned)."""

    __tablename__ = "lesion_change"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    lesion_id: uuid.UUID = Field(foreign_key="lesion.id", index=True)
    baseline_case_id: uuid.UUID = Field(foreign_key="clinical_case.id")
    followup_case_id: uuid.UUID = Field(foreign_key="clinical_case.id", unique=True)
    status: str = Field(max_length=16)
    reason: str | None = Field(default=None, max_length=200)
    measurements: dict = Field(default_factory=empty_dict, sa_column=Column(JSON, nullable=False))
    probability_change: dict = Field(default_factory=empty_dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
