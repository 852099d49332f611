"""/api/v1/auth: login, refresh, logout, TOTP enrolment, password change."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, status

from backend.auth.schemas import (
    LoginRequest,
    PasswordChange,
    RefreshRequest,
    TokenPair,
    TotpConfirm,
    TotpEnrol,
    TotpEnrolment,
)
from backend.auth.service import IssuedTokens
from backend.core.errors import (
    AccountLocked,
    BadRequest,
    NotAuthenticated,
    TooManyRequests,
)
from backend.core.openapi import AUTH_ERRORS, error_responses
from backend.deps import (
    AuditContextDep,
    AuthServiceDep,
    CurrentActor,
    UnitOfWork,
    commit_refusals,
)
from backend.sso.routes import require_password_login

router = APIRouter(prefix="/api/v1/auth", tags=["auth"], responses=error_responses(*AUTH_ERRORS))


def _pair(issued: IssuedTokens) -> TokenPair:
    return TokenPair(
        access_token=issued.access_token,
        access_expires_at=issued.access_expires_at,
        refresh_token=issued.refresh_token,
        refresh_expires_at=issued.refresh_expires_at,
        role=issued.user.role,
    )


@router.post("/login", response_model=TokenPair, dependencies=[Depends(require_password_login)])
def login(body: LoginRequest, session: UnitOfWork, auth: AuthServiceDep, ctx: AuditContextDep) -> TokenPair:
    """Exchange e-mail, password (and a TOTP code when enrolled) for an access and a refresh token."""
    with commit_refusals(session, NotAuthenticated, AccountLocked, TooManyRequests):
        issued = auth.login(session, ctx, body.email, body.password, body.totp_code)
    return _pair(issued)


@router.post("/refresh", response_model=TokenPair)
def refresh(
    body: RefreshRequest, session: UnitOfWork, auth: AuthServiceDep, ctx: AuditContextDep
) -> TokenPair:
    """Rotate a refresh token. Presenting an already-rotated token revokes the whole login."""
    with commit_refusals(session, NotAuthenticated):
        issued = auth.refresh(session, ctx, body.refresh_token)
    return _pair(issued)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(request: Request, actor: CurrentActor, session: UnitOfWork, auth: AuthServiceDep) -> None:
    """Revoke this login: its refresh tokens and (at once) its access tokens."""
    auth.logout(session, actor.ctx, request.state.session_id)


@router.post("/totp/enrol", response_model=TotpEnrolment)
def totp_enrol(
    body: TotpEnrol, actor: CurrentActor, session: UnitOfWork, auth: AuthServiceDep
) -> TotpEnrolment:
    """Start TOTP enrolment (the password again, throttled like a login; to replace an enrolled
    authenticator, a current code from it too): scan the QR code (or the otpauth URI) with an
    authenticator app, then confirm with its first code."""
    user = session.merge(actor.user)
    with commit_refusals(session, NotAuthenticated, AccountLocked, TooManyRequests, BadRequest):
        data = auth.begin_totp_enrolment(session, actor.ctx, user, body.password, body.totp_code)
    return TotpEnrolment(**data)


@router.post("/totp/confirm", status_code=status.HTTP_204_NO_CONTENT)
def totp_confirm(body: TotpConfirm, actor: CurrentActor, session: UnitOfWork, auth: AuthServiceDep) -> None:
    """Finish enrolment with the first code from the authenticator app."""
    user = session.merge(actor.user)
    with commit_refusals(session, BadRequest):
        auth.confirm_totp_enrolment(session, actor.ctx, user, body.code)


@router.post("/password", status_code=status.HTTP_204_NO_CONTENT)
def change_password(
    body: PasswordChange, request: Request, actor: CurrentActor, session: UnitOfWork, auth: AuthServiceDep
) -> None:
    """Change your password. Wrong current passwords are throttled like logins; every other login of
    yours ends (this one stays)."""
    user = session.merge(actor.user)
    with commit_refusals(session, NotAuthenticated, AccountLocked, TooManyRequests):
        auth.change_password(
            session,
            actor.ctx,
            user,
            body.current_password,
            body.new_password,
            keep_session=request.state.session_id,
        )
