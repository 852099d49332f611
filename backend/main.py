"""The FastAPI application factory: `create_app()` wires settings, services, routes and errors."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from backend import bootstrap, health, migrate, openapi, web
from backend.audit.routes import router as audit_router
from backend.auth.routes import router as auth_router
from backend.cases.routes import queue_router
from backend.cases.routes import router as cases_router
from backend.cases.worker import EmbeddedRunner, RedisDispatcher
from backend.config import Settings, get_settings
from backend.consent.routes import router as consent_router
from backend.core.errors import DermaLinkError, error_body
from backend.core.logging import configure_logging, log
from backend.core.middleware import BodyLimitMiddleware, RequestContextMiddleware
from backend.patients.routes import router as patients_router
from backend.services import build_services
from backend.users.routes import clinics_router
from backend.users.routes import router as users_router

API_PREFIX = "/api/v1"


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DermaLinkError)
    async def dermalink_error(_request: Request, exc: DermaLinkError) -> JSONResponse:
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
        return JSONResponse(error_body(kind, errors), status_code=400 if malformed else 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kinds = {404: "not_found", 405: "method_not_allowed"}
        return JSONResponse(
            error_body(kinds.get(exc.status_code, "http_error"), exc.detail),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", error=type(exc).__name__)
        return JSONResponse(error_body("internal_error", "an unexpected error occurred"), status_code=500)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    services = build_services(settings)
    configure_logging(json=settings.is_production)
    db = services.db
    if settings.auto_migrate:
        migrate.upgrade(db.url)
    dispatcher = (
        RedisDispatcher(settings.redis_url, services.analyzer)
        if settings.queue == "redis"
        else EmbeddedRunner(services.analyzer)
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        with db.session() as session:
            services.vault.current_kek_id(
                session
            )  # the first key-encryption key, before any request needs it
            session.commit()
        services.erasure.resume_pending(db.session)  # finish erasures a crash interrupted
        created = bootstrap.create_demo_users(db, settings, services.auth)
        if created:
            bootstrap.print_demo_users(created)
        dispatcher.start()
        yield
        dispatcher.stop()
        db.dispose()

    app = FastAPI(
        title="DermaLink API",
        version="0.1.0",
        description=(
            "Teledermatology decision support. The classifier's output supports, and never replaces, "
            "a clinician's diagnosis."
        ),
        lifespan=lifespan,
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
    app.state.dispatcher = dispatcher
    app.state.readiness_checks = {"model": services.classifier.readiness}

    def limit_for(path: str) -> int:
        return settings.max_upload_bytes if path in settings.upload_paths else settings.max_body_bytes

    app.add_middleware(BodyLimitMiddleware, limit_for=limit_for)
    app.add_middleware(RequestContextMiddleware)
    _error_handlers(app)
    routers = (
        health.router,
        auth_router,
        users_router,
        clinics_router,
        audit_router,
        patients_router,
        consent_router,
        cases_router,
        queue_router,
    )
    for router in routers:
        app.include_router(router)
    openapi.install(app)
    if web.BUILD_DIR.is_dir():
        app.mount("/", web.WebApp(directory=web.BUILD_DIR, html=True), name="web")
    return app
