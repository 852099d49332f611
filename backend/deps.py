"""Typed FastAPI dependencies: `SessionDep`, `CurrentActor`, role guards.

Denied attempts (no token, a bad token, the wrong role) are audited in their own transaction,
since the request's own transaction never commits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Annotated

import anyio
from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from backend.audit.models import Outcome
from backend.audit.service import record
from backend.auth.service import AuthService
from backend.config import Settings
from backend.core import metrics
from backend.core.actor import Actor, AuditContext
from backend.core.errors import DermaLinkError, InvalidToken, NotAuthenticated, PermissionDenied
from backend.core.logging import request_id_var
from backend.db import Database
from backend.sso.service import session_has_provider_mfa
from backend.users.models import Role, User


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_database(request: Request) -> Database:
    return request.app.state.db


async def get_auth_service(request: Request) -> AuthService:
    return request.app.state.auth


async def get_session(db: Annotated[Database, Depends(get_database)]) -> AsyncIterator[Session]:
    """The request's session, made and closed on the event loop: neither touches the database, except
    closing a session whose transaction is still open (a rollback), which runs in a worker thread.
    Every dependency below that is sync runs in a worker thread of its own (a round trip each), so the
    ones that need no database are async."""
    session = db.session()
    try:
        yield session
    finally:
        if session.in_transaction():
            with anyio.CancelScope(shield=True):
                await run_in_threadpool(session.close)
        else:
            session.close()


SessionDep = Annotated[Session, Depends(get_session)]


async def unit_of_work(session: SessionDep) -> AsyncIterator[Session]:
    """The request's transaction: committed once when the route returns, before the response is sent.

    Routes and services never commit; a route that raises leaves its transaction uncommitted (a refusal
    that must keep its audit event uses `commit_refusals`). Function scope makes FastAPI run the commit
    before the response goes out, so a 201 means the data is durable; a failing commit is an error
    response, never a success the database does not hold. The commit and the rollback run in a worker
    thread (they wait for the database); the rest on the event loop."""
    try:
        yield session
    except BaseException:
        with anyio.CancelScope(shield=True):
            await run_in_threadpool(session.rollback)
        raise
    if session.in_transaction():
        with metrics.stage("commit"):
            await run_in_threadpool(session.commit)


SettingsDep = Annotated[Settings, Depends(get_settings)]
DatabaseDep = Annotated[Database, Depends(get_database)]
UnitOfWork = Annotated[Session, Depends(unit_of_work, scope="function")]
AuthServiceDep = Annotated[AuthService, Depends(get_auth_service)]


async def audit_context(request: Request) -> AuditContext:
    client = request.client.host if request.client else None
    return AuditContext(client_address=client, request_id=request_id_var.get())


AuditContextDep = Annotated[AuditContext, Depends(audit_context)]


def audit_denial(session: Session, ctx: AuditContext, action: str, reason: str, **fields: object) -> None:
    """Record a refused attempt and commit it. Called before the request has changed anything, so the
    commit holds only this event (the request's transaction is never committed after a denial)."""
    session.rollback()
    record(session, ctx, action, outcome=Outcome.denied, reason=reason, **fields)  # type: ignore[arg-type]
    session.commit()


_bearer = HTTPBearer(auto_error=False, description="Access token from POST /api/v1/auth/login")


def current_actor(
    request: Request,
    session: SessionDep,
    auth: AuthServiceDep,
    ctx: AuditContextDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Actor:
    action = f"access {request.method} {request.url.path}"[:64]
    if credentials is None:
        audit_denial(session, ctx, "auth.access", "no bearer token", resource_id=action)
        raise NotAuthenticated("an access token is required (Authorization: Bearer <token>)")
    with metrics.stage("authenticate"):
        try:
            claims = auth.tokens.verify_access(credentials.credentials)
        except InvalidToken as exc:
            audit_denial(session, ctx, "auth.access", str(exc.detail)[:200], resource_id=action)
            raise
        user = auth.live_user(session, claims.user_id, claims.session_id)
    if user is None:
        audit_denial(
            session,
            ctx.as_actor(claims.user_id, claims.role),
            "auth.access",
            "session revoked or user disabled",
            resource_id=action,
        )
        raise InvalidToken("this login was revoked or the account is disabled")
    request.state.session_id = claims.session_id
    return Actor(user=user, ctx=ctx.as_actor(user.id, user.role))


CurrentActor = Annotated[Actor, Depends(current_actor)]


def _passes_at_once(user: User, allowed: set[str]) -> bool:
    """An allowed role, and for an admin TOTP enabled: let through without asking the database."""
    return user.role in allowed and (user.role != Role.admin or user.totp_enabled)


def role_check(*roles: Role) -> Callable[[Request, Actor, Session], Actor]:
    """The check behind `require_role`, for a caller already in a worker thread: lets only ``roles``
    through, and admins only with TOTP enabled, unless this login is a single sign-on whose provider
    proved a second factor (`backend.sso`). A refusal is audited, then raised."""

    allowed = {r.value for r in roles}

    def check(request: Request, actor: Actor, session: Session) -> Actor:
        if _passes_at_once(actor.user, allowed):
            return actor
        if actor.user.role not in allowed:
            audit_denial(
                session,
                actor.ctx,
                "auth.forbidden",
                f"role {actor.user.role} not in {sorted(allowed)}",
                resource_id=f"{request.method} {request.url.path}"[:254],
            )
            raise PermissionDenied(f"this action needs the role {' or '.join(sorted(allowed))}")
        if not session_has_provider_mfa(session, getattr(request.state, "session_id", None)):
            audit_denial(
                session,
                actor.ctx,
                "auth.forbidden",
                "admin without TOTP",
                resource_id=f"{request.method} {request.url.path}"[:254],
            )
            raise PermissionDenied(
                "admins must enrol TOTP two-factor first (POST /api/v1/auth/totp/enrol, then /confirm)"
            )
        return actor

    return check


def require_role(*roles: Role) -> Callable[..., Awaitable[Actor]]:
    """A dependency that lets only ``roles`` through (`role_check`). The common case passes on the event
    loop; anything that needs the database (auditing a refusal, an admin's single sign-on) goes to a
    worker thread."""

    allowed = {r.value for r in roles}
    check = role_check(*roles)

    async def guard(request: Request, actor: CurrentActor, session: SessionDep) -> Actor:
        if _passes_at_once(actor.user, allowed):
            return actor
        return await run_in_threadpool(check, request, actor, session)

    return guard


AdminActor = Annotated[Actor, Depends(require_role(Role.admin))]
ClinicianActor = Annotated[Actor, Depends(require_role(Role.clinician))]
DermatologistActor = Annotated[Actor, Depends(require_role(Role.dermatologist))]
ClinicalActor = Annotated[Actor, Depends(require_role(Role.clinician, Role.dermatologist))]


@contextmanager
def commit_refusals(session: Session, *refusals: type[DermaLinkError]) -> Iterator[None]:
    """Inside the block, a refusal of one of these types still commits what the service recorded before
    refusing (its audit event, failed-login counters); any other error leaves the transaction uncommitted."""
    try:
        yield
    except refusals:
        session.commit()
        raise
