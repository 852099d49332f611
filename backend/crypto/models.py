from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import LargeBinary
from sqlmodel import Column, Field, SQLModel

from backend.core.clock import utcnow
from backend.core.defaults import new_id


class KeyEncryptionKey(SQLModel, table=True):
    """A key-encryption key. Its material is sealed by the provider (in the embedded default, by a key
    derived from the master key file); a cloud KMS provider would keep only the KMS key's name here."""

    __tablename__ = "key_encryption_key"

    id: int = Field(primary_key=True)
    provider: str = Field(default="local", max_length=20)
    material_sealed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    retired_at: datetime | None = None  # set once no data key is wrapped by it any more


class DataKey(SQLModel, table=True):
    """One owner's data key (one per patient), stored only wrapped. Destroying it crypto-shreds
    everything encrypted under it."""

    __tablename__ = "data_key"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    owner_id: uuid.UUID = Field(unique=True, index=True)
    kek_id: int | None = Field(default=None, foreign_key="key_encryption_key.id", index=True)
    wrapped: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    created_at: datetime = Field(default_factory=utcnow)
    destroyed_at: datetime | None = None
