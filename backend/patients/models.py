"""Patients: known by a random pseudonymous id; identifying fields only encrypted."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import LargeBinary, UniqueConstraint
from sqlmodel import Column, Field, SQLModel

from backend.core.clock import utcnow
from backend.core.defaults import new_id


class Patient(SQLModel, table=True):
    __tablename__ = "patient"
    __table_args__ = (UniqueConstraint("clinic_id", "mrn_index", name="uq_patient_clinic_mrn"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)  # the pseudonymous id
    clinic_id: uuid.UUID = Field(foreign_key="clinic.id", index=True)
    # Keyed hash (HMAC) of the normalised medical record number: look-up without decrypting rows.
    mrn_index: str | None = Field(default=None, max_length=64, index=True)
    # Name, date of birth, MRN and contact as encrypted JSON, bound to this patient and record.
    identity_sealed: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    created_by: uuid.UUID = Field(foreign_key="user_account.id")
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    erasure_requested_at: datetime | None = None
    erased_at: datetime | None = None
