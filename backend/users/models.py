"""Staff accounts. Patients are not users."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlmodel import Field, SQLModel

from backend.core.clock import utcnow
from backend.core.defaults import new_id


class Role(StrEnum):
    clinician = "clinician"
    dermatologist = "dermatologist"
    admin = "admin"


class Clinic(SQLModel, table=True):
    """An organisation. A clinician belongs to one and sees only its patients."""

    __tablename__ = "clinic"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    name: str = Field(max_length=200, unique=True)
    created_at: datetime = Field(default_factory=utcnow)


class User(SQLModel, table=True):
    __tablename__ = "user_account"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    email: str = Field(max_length=254, unique=True, index=True)
    full_name: str = Field(max_length=200)
    role: str = Field(max_length=20)
    clinic_id: uuid.UUID | None = Field(default=None, foreign_key="clinic.id", index=True)
    password_hash: str = Field(max_length=255)
    is_active: bool = True
    # TOTP secret, sealed with a key derived from the master key (never stored in clear).
    totp_secret_sealed: str | None = Field(default=None, max_length=255)
    totp_enabled: bool = False
    totp_last_step: int | None = None  # refuses a code replayed within its time step
    failed_logins: int = 0
    last_failed_login_at: datetime | None = None
    locked_until: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
