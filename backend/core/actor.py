"""Who is acting: the audit context of a request and the authenticated actor.

These live in `backend.core` so that services can take an `Actor` without importing the web layer
(`backend.deps` builds them from the request).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from backend.users.models import Role, User


@dataclass(frozen=True)
class AuditContext:
    """Who is acting and from where; built once per request (`backend.deps`)."""

    actor_id: uuid.UUID | None = None
    actor_role: str | None = None
    client_address: str | None = None
    request_id: str | None = None

    def as_actor(self, actor_id: uuid.UUID, role: str) -> AuditContext:
        return AuditContext(actor_id, role, self.client_address, self.request_id)


SYSTEM = AuditContext(actor_role="system")


@dataclass(frozen=True)
class Actor:
    """The authenticated user and the audit context their actions are recorded under."""

    user: User
    ctx: AuditContext

    @property
    def role(self) -> Role:
        return Role(self.user.role)
