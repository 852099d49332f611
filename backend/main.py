"""The FastAPI application factory: `create_app()` wires settings, keys, database, routes and errors."""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from backend import bootstrap, health, migrate
from backend.audit.routes import router as audit_router
from backend.auth.routes import router as auth_router
from backend.auth.service import AuthService
from backend.auth.tokens import TokenService
from backend.config import DEFAULT_SECRET, Settings, get_settings
from backend.core.errors import DermaLinkError, error_body
from backend.core.keys import Keyring, load_master_key
from backend.core.logging import configure_logging, log
from backend.core.middleware import BodyLimitMiddleware, RequestContextMiddleware
from backend.db import Database
from backend.consent.routes import router as consent_router
from backend.crypto.envelope import KeyProvider, Vault
from backend.patients.erasure import ErasureService
from backend.patients.routes import router as patients_router
from backend.patients.service import PatientService
from backend.storage import make_blob_store
from backend.users.routes import clinics_router
from backend.users.routes import router as users_router

STATIC_DIR = Path(__file__).resolve().parent / "static"
API_PREFIX = "/api/v1"


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DermaLinkError)
    async def dermalink_error(_request: Request, exc: DermaLinkError) -> JSONResponse:
        return JSONResponse(error_body(exc.type, exc.detail), status_code=exc.status_code, headers=exc.headers)

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
            status_code=exc.status_code, headers=getattr(exc, "headers", None),
        )  # fmt: skip

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", error=type(exc).__name__)
        return JSONResponse(error_body("internal_error", "an unexpected error occurred"), status_code=500)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    settings.check_production()
    configure_logging(json=settings.is_production)
    keyring = Keyring(load_master_key(settings))
    db = Database(str(settings.database_url), audit_key=keyring.audit)
    if settings.auto_migrate:
        migrate.upgrade(db.url)

    secret = settings.secret_key.get_secret_value()
    signing = keyring.jwt_fallback if secret == DEFAULT_SECRET else secret.encode()
    tokens = TokenService(signing, [s.get_secret_value().encode() for s in settings.previous_secret_keys],
                          settings.access_token_minutes)  # fmt: skip
    auth = AuthService(settings, tokens, keyring.totp)
    vault = Vault(KeyProvider(keyring.key_encryption_root))
    blobs = make_blob_store(settings.blob_store_url, settings.data_dir / "blobs")
    patients = PatientService(vault, keyring.blind_index)
    erasure = ErasureService(vault, blobs)

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        with db.session() as session:
            vault.current_kek_id(session)  # the first key-encryption key, before any request needs it
            session.commit()
        erasure.resume_pending(db.session)  # finish erasures a crash interrupted
        created = bootstrap.create_demo_users(db, settings, auth)
        if created:
            bootstrap.print_demo_users(created)
        yield
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
    app.state.settings, app.state.keyring, app.state.db, app.state.auth = settings, keyring, db, auth
    app.state.vault, app.state.blobs, app.state.patients, app.state.erasure = vault, blobs, patients, erasure
    app.state.readiness_checks = {}

    def limit_for(path: str) -> int:
        return settings.max_upload_bytes if path.endswith(settings.upload_path_suffixes) else settings.max_body_bytes

    app.add_middleware(BodyLimitMiddleware, limit_for=limit_for)
    app.add_middleware(RequestContextMiddleware)
    _error_handlers(app)
    routers = (health.router, auth_router, users_router, clinics_router, audit_router, patients_router, consent_router)
    for router in routers:
        app.include_router(router)
    if STATIC_DIR.is_dir():
        app.mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="web")
    return app
