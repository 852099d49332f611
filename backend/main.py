"""The FastAPI application factory: `create_app()` wires settings, services, routes and errors."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from backend import apidocs, bootstrap, health, migrate, openapi, web
from backend.audit.routes import router as audit_router
from backend.auth.routes import router as auth_router
from backend.cases.routes import queue_router
from backend.cases.routes import router as cases_router
from backend.cases.worker import EmbeddedRunner, RedisDispatcher
from backend.config import Settings, get_settings
from backend.consent.routes import router as consent_router
from backend.core import metrics
from backend.core.errors import DermaLinkError, ServiceUnavailable, error_body
from backend.core.logging import configure_logging, log
from backend.core.middleware import (
    BodyLimitMiddleware,
    HeaderLimitMiddleware,
    RequestContextMiddleware,
    SecurityHeadersMiddleware,
)
from backend.db import is_lock_timeout
from backend.fhir.routes import audit_router as fhir_audit_router
from backend.fhir.routes import cases_router as fhir_cases_router
from backend.images.intake import return_freed_memory_to_the_os
from backend.lesions.routes import patient_lesions_router
from backend.lesions.routes import router as lesions_router
from backend.observability import queue_registry
from backend.observability import router as metrics_router
from backend.patients.routes import router as patients_router
from backend.services import build_services
from backend.sso.routes import router as sso_router
from backend.sso.service import SsoService
from backend.users.routes import clinics_router
from backend.users.routes import router as users_router

API_PREFIX = "/api/v1"
# The web app (an Expo export, served at /) and /docs run their own scripts and styles from this origin
# only; images may be data: or blob: URLs (previews of photos being uploaded); nobody may frame them.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "connect-src 'self'; frame-ancestors 'none'"
)


class DermaLinkApp(FastAPI):
    """FastAPI with a hook for layers that must wrap even Starlette's `ServerErrorMiddleware`, which sends
    the last-resort 500 from outside every middleware added with ``add_middleware``."""

    wrap_outermost: Callable[[ASGIApp], ASGIApp] | None = None

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        return self.wrap_outermost(stack) if self.wrap_outermost else stack


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DermaLinkError)
    async def dermalink_error(_request: Request, exc: DermaLinkError) -> JSONResponse:
        metrics.ERRORS.labels(exc.type).inc()
        return JSONResponse(
            error_body(exc.type, exc.detail), status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")} for e in exc.errors()
        ]
        malformed = any(e["type"] == "json_invalid" for e in errors)
        kind = "malformed_json" if malformed else "validation_error"
        metrics.ERRORS.labels(kind).inc()
        return JSONResponse(error_body(kind, errors), status_code=400 if malformed else 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kinds = {404: "not_found", 405: "method_not_allowed"}
        return JSONResponse(
            error_body(kinds.get(exc.status_code, "http_error"), exc.detail),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(OperationalError)
    @app.exception_handler(sqlite3.OperationalError)
    async def database_error(request: Request, exc: Exception) -> JSONResponse:
        if not is_lock_timeout(exc):
            return await unexpected(request, exc)
        log.warning("database lock not granted in time", error=str(exc)[:200])
        busy = ServiceUnavailable(
            "the database is busy right now; try again shortly", headers={"Retry-After": "2"}
        )
        return await dermalink_error(request, busy)

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", error=type(exc).__name__)
        metrics.ERRORS.labels("internal_error").inc()
        return JSONResponse(error_body("internal_error", "an unexpected error occurred"), status_code=500)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    services = build_services(settings)
    configure_logging(json=settings.is_production, level=settings.log_level)
    return_freed_memory_to_the_os()
    db = services.db
    if settings.auto_migrate:
        migrate.upgrade(db.url)
    dispatcher = (
        RedisDispatcher(settings.redis_url, services.analyzer)
        if settings.queue == "redis"
        else EmbeddedRunner(services.analyzer, inline=settings.inference == "onnx")
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        services.anchor.start()  # authenticate a pre-0004 head, anchor the chain, keep anchoring it
        with db.session() as session:
            services.vault.current_kek_id(
                session
            )  # the first key-encryption key, before any request needs it
            session.commit()
        # Before any request: erasures the database no longer knows (a restored backup), then those a
        # crash interrupted.
        services.erasure.reapply_ledger(db.session)
        services.erasure.resume_pending(db.session)
        created = bootstrap.create_demo_users(db, settings, services.auth)
        if created:
            bootstrap.print_demo_users(created)
        dispatcher.start()
        services.sweeper.start()  # blobs whose commit never happened, after the grace period
        yield
        services.sweeper.stop()
        dispatcher.stop()
        services.anchor.stop()  # a last checkpoint
        db.dispose()

    app = DermaLinkApp(
        title="DermaLink API",
        version="0.1.0",
        description=(
            "Teledermatology decision support. The classifier's output supports, and never replaces, "
            "a clinician's diagnosis."
        ),
        lifespan=lifespan,
        docs_url=None,  # apidocs.install serves /docs from local files (no CDN)
        redoc_url=None,
    )
    app.state.services, app.state.settings, app.state.keyring, app.state.db = (
        services,
        settings,
        services.keyring,
        db,
    )
    app.state.auth, app.state.vault, app.state.blobs = services.auth, services.vault, services.blobs
    app.state.patients, app.state.erasure, app.state.cases = (
        services.patients,
        services.erasure,
        services.cases,
    )
    app.state.lesions = services.lesions
    app.state.dispatcher = dispatcher
    app.state.sso = SsoService(settings, services.auth)  # single sign-on (off without DERMALINK_OIDC_ISSUER)
    app.state.readiness_checks = {"model": services.classifier.readiness}
    app.state.metrics_registry = queue_registry(db)

    def limit_for(path: str) -> int:
        return settings.max_upload_bytes if path in settings.upload_paths else settings.max_body_bytes

    app.add_middleware(BodyLimitMiddleware, limit_for=limit_for)
    app.add_middleware(HeaderLimitMiddleware, max_bytes=settings.max_header_bytes)
    app.add_middleware(RequestContextMiddleware)

    def outermost(stack: ASGIApp) -> ASGIApp:
        """Outside Starlette's last-resort error middleware, so that even a 500 has the headers; the
        proxy headers first of all, so that the scheme (HSTS) and client address are the proxy's."""
        stack = SecurityHeadersMiddleware(
            stack, csp_for=lambda _path: CONTENT_SECURITY_POLICY, hsts_seconds=settings.hsts_seconds
        )
        if settings.trusted_proxies:
            stack = ProxyHeadersMiddleware(stack, trusted_hosts=settings.trusted_proxies)
        return stack

    app.wrap_outermost = outermost
    app.add_middleware(metrics.MetricsMiddleware)
    _error_handlers(app)
    routers = (
        health.router,
        metrics_router,
        auth_router,
        users_router,
        clinics_router,
        audit_router,
        patients_router,
        consent_router,
        cases_router,
        queue_router,
        lesions_router,
        patient_lesions_router,
        fhir_cases_router,
        fhir_audit_router,
        sso_router,
    )
    for router in routers:
        app.include_router(router)
    apidocs.install(app)
    openapi.install(app)
    if web.BUILD_DIR.is_dir():
        app.mount("/", web.WebApp(directory=web.BUILD_DIR, html=True), name="web")
    return app
