"""/healthz (the process is alive) and /readyz (the database answers, the model is loaded)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

router = APIRouter(tags=["health"])

# Other parts of the app add readiness checks here: name -> callable(app) returning (ok, detail).
READINESS_CHECKS = "readiness_checks"


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    checks: dict[str, dict[str, object]] = {}
    try:
        with request.app.state.db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        checks["database"] = {"ok": True, "detail": "reachable"}
    except Exception as exc:  # any driver error means not ready
        checks["database"] = {"ok": False, "detail": f"unreachable: {type(exc).__name__}"}
    for name, check in getattr(request.app.state, READINESS_CHECKS, {}).items():
        ok, detail = check(request.app)
        checks[name] = {"ok": ok, "detail": detail}
    ready = all(c["ok"] for c in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks}, status_code=200 if ready else 503
    )
