"""Versioned consent documents and the append-only history of each patient's consent."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from backend.core.clock import utcnow
from backend.core.defaults import new_id


class Scope(StrEnum):
    ai_analysis = "ai_analysis"  # (a) AI analysis of lesion images
    specialist_sharing = "specialist_sharing"  # (b) sharing with a remote dermatologist
    research = "research"  # (c) de-identified images for research and model improvement


class Method(StrEnum):
    signed = "signed"  # signed on the device: the signature image is stored encrypted
    verbal = "verbal"  # verbal, with a named witness


class ConsentDocument(SQLModel, table=True):
    """A published consent text. Published documents are immutable (no update path exists)."""

    __tablename__ = "consent_document"
    __table_args__ = (UniqueConstraint("version", "language", name="uq_consent_version_language"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    version: str = Field(max_length=40)
    language: str = Field(max_length=12)
    title: str = Field(max_length=200)
    text: str = Field(max_length=50_000)
    content_hash: str = Field(max_length=64)  # SHA-256 of title + text
    scopes: str = Field(max_length=200)  # comma-separated scopes this document covers
    requires_reconsent: bool = False  # consents under older versions stop counting once published
    published_by: uuid.UUID = Field(foreign_key="user_account.id")
    published_at: datetime = Field(default_factory=utcnow)
    withdrawn_at: datetime | None = None  # a withdrawn version can no longer be consented to


class ConsentEvent(SQLModel, table=True):
    """One grant or withdrawal of one scope. Never updated or deleted: the history is the record."""

    __tablename__ = "consent_event"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    patient_id: uuid.UUID = Field(foreign_key="patient.id", index=True)
    scope: str = Field(max_length=30)
    kind: str = Field(max_length=10)  # grant | withdraw
    document_id: uuid.UUID | None = Field(default=None, foreign_key="consent_document.id")
    method: str | None = Field(default=None, max_length=10)
    witness_name: str | None = Field(default=None, max_length=200)
    signature_blob: str | None = Field(default=None, max_length=300)  # blob key of the encrypted image
    reason: str | None = Field(default=None, max_length=1000)
    recorded_by: uuid.UUID = Field(foreign_key="user_account.id")
    recorded_at: datetime = Field(default_factory=utcnow)
