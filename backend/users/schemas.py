from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from backend.core.schemas import RequestBody, ResponseBody
from backend.users.models import Role

EMAIL_PATTERN = r"^[^@\s]{1,64}@[^@\s]{1,189}\.[^@\s]{2,63}$"


class UserCreate(RequestBody):
    email: str = Field(max_length=254, pattern=EMAIL_PATTERN)
    full_name: str = Field(min_length=1, max_length=200)
    role: Role
    password: str = Field(min_length=1, max_length=256)
    clinic_id: uuid.UUID | None = Field(default=None, description="Required for clinicians")


class UserUpdate(RequestBody):
    full_name: str | None = Field(default=None, min_length=1, max_length=200)
    role: Role | None = None
    is_active: bool | None = None
    clinic_id: uuid.UUID | None = None


class ClinicCreate(RequestBody):
    name: str = Field(min_length=2, max_length=200)


class ClinicOut(ResponseBody):
    id: uuid.UUID
    name: str
    created_at: datetime


class UserOut(ResponseBody):
    id: uuid.UUID
    email: str
    full_name: str
    role: Role
    clinic_id: uuid.UUID | None
    is_active: bool
    totp_enabled: bool
    locked_until: datetime | None
    created_at: datetime
