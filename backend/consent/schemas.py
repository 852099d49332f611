from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field, field_validator

from backend.consent.models import Method, Scope
from backend.core.schemas import RequestBody, ResponseBody


class DocumentCreate(RequestBody):
    version: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9._-]+$")
    language: str = Field(min_length=2, max_length=12, pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")
    title: str = Field(min_length=1, max_length=200)
    text: str = Field(min_length=20, max_length=50_000)
    scopes: list[Scope] = Field(min_length=1, max_length=len(Scope))
    requires_reconsent: bool = False


class DocumentOut(ResponseBody):
    id: uuid.UUID
    version: str
    language: str
    title: str
    text: str
    content_hash: str
    scopes: list[Scope]
    requires_reconsent: bool
    published_at: datetime
    withdrawn_at: datetime | None

    @field_validator("scopes", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return value.split(",") if isinstance(value, str) else value


class ConsentCreate(RequestBody):
    document_id: uuid.UUID
    scopes: list[Scope] = Field(min_length=1, max_length=3)
    method: Method
    witness_name: str | None = Field(default=None, min_length=2, max_length=200)
    signature_png_base64: str | None = Field(
        default=None, max_length=700_000, description="PNG or JPEG, base64"
    )


class ConsentWithdraw(RequestBody):
    scopes: list[Scope] = Field(min_length=1, max_length=3)
    reason: str | None = Field(default=None, max_length=1000)


class ConsentEventOut(ResponseBody):
    id: uuid.UUID
    scope: Scope
    kind: str
    document_id: uuid.UUID | None
    method: str | None
    witness_name: str | None
    has_signature: bool = False
    reason: str | None
    recorded_by: uuid.UUID
    recorded_at: datetime


class ScopeStatus(ResponseBody):
    scope: Scope
    active: bool
    document_id: uuid.UUID | None = None
    document_version: str | None = None
    needs_reconsent: bool = False


class ConsentStatus(ResponseBody):
    patient_id: uuid.UUID
    scopes: list[ScopeStatus]
    history: list[ConsentEventOut]
