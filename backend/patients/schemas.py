from __future__ import annotations

import uuid
from datetime import date, datetime

from pydantic import Field

from backend.core.schemas import RequestBody, ResponseBody


class PatientIdentity(RequestBody):
    """Identifying fields: stored only encrypted, never written to logs or the audit trail."""

    full_name: str = Field(min_length=1, max_length=200)
    date_of_birth: date
    medical_record_number: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9./_-]+$")
    contact: str | None = Field(default=None, max_length=300, description="Phone or e-mail")


class PatientUpdate(RequestBody):
    full_name: str | None = Field(default=None, min_length=1, max_length=200)
    date_of_birth: date | None = None
    contact: str | None = Field(default=None, max_length=300)


class PatientOut(ResponseBody):
    id: uuid.UUID
    clinic_id: uuid.UUID
    created_at: datetime
    identity: PatientIdentity


class ReasonBody(RequestBody):
    reason: str = Field(min_length=10, max_length=1000, description="Why; recorded in the audit trail")


class ErasureBody(ReasonBody):
    basis: str = Field(pattern="^(consent_withdrawn|patient_request)$")


class ErasureOut(ResponseBody):
    patient_id: uuid.UUID
    erased_at: datetime
    blobs_deleted: int
