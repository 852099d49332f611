"""External identities (a hospital OpenID Provider's account linked to a DermaLink account) and the
short-lived record of each single sign-on attempt."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, UniqueConstraint
from sqlmodel import Column, Field, SQLModel

from backend.core.clock import utcnow
from backend.core.defaults import empty_list, new_id


class ExternalIdentity(SQLModel, table=True):
    """``(issuer, subject)`` at the provider is this DermaLink user. The provider's ``sub`` is stable;
    the e-mail is kept only to show admins which account was linked."""

    __tablename__ = "external_identity"
    __table_args__ = (UniqueConstraint("issuer", "subject", name="uq_external_identity_subject"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="user_account.id", index=True)
    issuer: str = Field(max_length=300)
    subject: str = Field(max_length=255)
    email: str | None = Field(default=None, max_length=254)
    created_at: datetime = Field(default_factory=utcnow)
    last_login_at: datetime | None = None


class OidcLogin(SQLModel, table=True):
    """One sign-on attempt, from the redirect to the provider until the app has its tokens.

    Only hashes of the ``state``, of the browser-binding cookie and of the one-time hand-off code are
    stored. ``state_used_at`` makes each state single-use (a replayed callback is refused);
    ``handoff_used_at`` does the same for the code the app exchanges for DermaLink tokens. Once the
    tokens are issued, ``auth_session_id`` ties the DermaLink login to the provider's proof of a second
    factor (``mfa``), which the admin guard accepts in place of DermaLink's own TOTP.
    """

    __tablename__ = "oidc_login"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    state_hash: str = Field(max_length=64, unique=True, index=True)
    browser_hash: str = Field(max_length=64)
    nonce: str = Field(max_length=100)
    code_verifier: str = Field(max_length=128)  # PKCE; useless without the provider's one-time code
    redirect_uri: str = Field(max_length=500)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    state_used_at: datetime | None = None

    # Set by a successful callback.
    user_id: uuid.UUID | None = Field(default=None, foreign_key="user_account.id")
    issuer: str | None = Field(default=None, max_length=300)
    subject: str | None = Field(default=None, max_length=255)
    amr: list = Field(default_factory=empty_list, sa_column=Column(JSON, nullable=False))
    acr: str | None = Field(default=None, max_length=200)
    mfa: bool = False
    needs_totp: bool = False  # an admin whose provider proved no second factor: DermaLink's TOTP
    handoff_hash: str | None = Field(default=None, max_length=64, unique=True, index=True)
    handoff_expires_at: datetime | None = None
    handoff_used_at: datetime | None = None
    auth_session_id: uuid.UUID | None = Field(default=None, foreign_key="auth_session.id", index=True)
