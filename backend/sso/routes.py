"""/api/v1/auth/oidc: single sign-on with the hospital's OpenID Provider (see docs/sso.md).

``GET /config`` tells the app whether to offer "Sign in with your hospital account";
``GET /login`` sends the browser to the provider; ``GET /callback`` is where the provider sends it
back, and it redirects to the app (``oidc_app_redirect``, default ``/#/sso``) with ``?code=`` (a
one-time code) or ``?error=``; ``POST /exchange`` trades the code for DermaLink tokens.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field

from backend.auth.schemas import TokenPair
from backend.core.errors import InvalidCredentials, InvalidToken, NotFound, PermissionDenied, TotpRequired
from backend.core.openapi import AUTH_ERRORS, error_responses
from backend.core.schemas import RequestBody
from backend.deps import AuditContextDep, SessionDep, SettingsDep, UnitOfWork, audit_denial, commit_refusals
from backend.sso.oidc import SsoRefused
from backend.sso.service import ATTEMPT_LIFETIME, SsoService

PREFIX = "/api/v1/auth/oidc"
BROWSER_COOKIE = "dermalink_sso"
router = APIRouter(prefix=PREFIX, tags=["auth"], responses=error_responses(*AUTH_ERRORS, NotFound))


async def get_sso(request: Request) -> SsoService:
    return request.app.state.sso


SsoDep = Annotated[SsoService, Depends(get_sso)]


class SsoConfig(BaseModel):
    enabled: bool
    password_login_enabled: bool
    display_name: str
    login_url: str | None


class ExchangeRequest(RequestBody):
    code: str = Field(min_length=20, max_length=100)
    totp_code: str | None = Field(default=None, min_length=6, max_length=8, pattern=r"^\d+$")


def require_password_login(settings: SettingsDep, session: SessionDep, ctx: AuditContextDep) -> None:
    """Password sign-in can be switched off when single sign-on is on (``password_login_enabled``)."""
    if not settings.password_login_enabled and settings.sso_enabled:
        audit_denial(
            session, ctx, "auth.login", "password sign-in is switched off", detail={"method": "password"}
        )
        raise PermissionDenied(f"password sign-in is switched off; sign in with {settings.oidc_display_name}")


def _to_app(target: str, query: dict[str, str]) -> RedirectResponse:
    if "error_description" in query:
        query["error_description"] = query["error_description"][:200]
    return RedirectResponse(
        f"{target}?{urlencode(query)}", status_code=302, headers={"Cache-Control": "no-store"}
    )


@router.get("/config", response_model=SsoConfig)
def sso_config(settings: SettingsDep, sso: SsoDep) -> SsoConfig:
    """Whether single sign-on is offered (for the app's sign-in screen); public."""
    return SsoConfig(
        enabled=sso.enabled,
        password_login_enabled=settings.password_login_enabled or not sso.enabled,
        display_name=settings.oidc_display_name,
        login_url=f"{PREFIX}/login" if sso.enabled else None,
    )


@router.get("/login", response_class=RedirectResponse, status_code=302)
def sso_login(request: Request, session: UnitOfWork, settings: SettingsDep, sso: SsoDep) -> RedirectResponse:
    """Start single sign-on: redirects the browser to the identity provider (authorization code + PKCE)."""
    redirect_uri = settings.oidc_redirect_uri or str(request.url_for("sso_callback"))
    try:
        url, browser = sso.begin(session, redirect_uri)
    except SsoRefused as exc:  # the provider is unreachable: tell the app, not a bare JSON page
        return _to_app(settings.oidc_app_redirect, {"error": exc.type, "error_description": str(exc.detail)})
    response = RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})
    response.set_cookie(
        BROWSER_COOKIE,
        browser,
        max_age=int(ATTEMPT_LIFETIME.total_seconds()),
        path=PREFIX,
        httponly=True,
        secure=settings.is_production or request.url.scheme == "https",  # TLS may end at a proxy
        samesite="lax",  # sent on the provider's top-level redirect back to the callback
    )
    return response


@router.get("/callback", response_class=RedirectResponse, status_code=302, name="sso_callback")
def sso_callback(
    request: Request,
    session: UnitOfWork,
    settings: SettingsDep,
    sso: SsoDep,
    ctx: AuditContextDep,
    state: Annotated[str, Query(min_length=10, max_length=200)],
    code: Annotated[str | None, Query(max_length=2000)] = None,
    iss: Annotated[str | None, Query(max_length=500)] = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
) -> RedirectResponse:
    """The identity provider's redirect. Sends the browser on to the app with ``?code=`` or ``?error=``."""
    target = settings.oidc_app_redirect
    try:
        with commit_refusals(session, SsoRefused):
            handoff = sso.complete(
                session,
                ctx,
                state=state,
                code=code,
                browser=request.cookies.get(BROWSER_COOKIE),
                issuer=iss,
                error=error,
            )
        query = {"code": handoff}
    except SsoRefused as exc:
        query = {"error": exc.type, "error_description": str(exc.detail)}
    response = _to_app(target, query)
    response.delete_cookie(BROWSER_COOKIE, path=PREFIX)
    return response


@router.post("/exchange", response_model=TokenPair)
def sso_exchange(body: ExchangeRequest, session: UnitOfWork, sso: SsoDep, ctx: AuditContextDep) -> TokenPair:
    """Trade the one-time code from the callback (with a TOTP code when asked) for DermaLink's access
    and refresh tokens, the same pair ``POST /auth/login`` returns."""
    with commit_refusals(session, SsoRefused, InvalidToken, InvalidCredentials, TotpRequired):
        issued = sso.exchange(session, ctx, body.code, body.totp_code)
    return TokenPair(
        access_token=issued.access_token,
        access_expires_at=issued.access_expires_at,
        refresh_token=issued.refresh_token,
        refresh_expires_at=issued.refresh_expires_at,
        role=issued.user.role,
    )
