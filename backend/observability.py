"""``GET /metrics``: Prometheus metrics (see `backend.core.metrics` for what is measured).

Who may scrape: a request carrying ``Authorization: Bearer <DERMALINK_METRICS_TOKEN>`` (the static
credential a Prometheus server is configured with: ``authorization: {credentials_file: ...}`` in its
scrape config), or an admin's access token. Without the token setting, only admins. Metrics carry no
patient data, but they do reveal load and error patterns, so they are not public.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CollectorRegistry
from sqlalchemy import func, or_
from sqlmodel import select

from backend.cases.models import AnalysisJob
from backend.core import metrics
from backend.core.clock import utcnow
from backend.core.openapi import error_responses
from backend.db import Database
from backend.deps import AuditContextDep, AuthServiceDep, SessionDep, current_actor, role_check
from backend.users.models import Role

router = APIRouter(tags=["health"], responses=error_responses())
_bearer = HTTPBearer(auto_error=False, description="DERMALINK_METRICS_TOKEN, or an admin's access token")
_admin = role_check(Role.admin)


def metrics_access(
    request: Request,
    session: SessionDep,
    auth: AuthServiceDep,
    ctx: AuditContextDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    token = request.app.state.settings.metrics_token
    if (
        credentials is not None
        and token is not None
        and hmac.compare_digest(credentials.credentials.encode(), token.get_secret_value().encode())
    ):
        return
    actor = current_actor(request, session, auth, ctx, credentials)  # 401 (audited) without a valid token
    _admin(request, actor, session)  # 403 (audited) for anyone but an admin


@router.get(
    "/metrics",
    response_class=Response,
    dependencies=[Depends(metrics_access)],
    responses={200: {"content": {"text/plain": {}}}},
)
def scrape(request: Request) -> Response:
    """Prometheus text exposition format."""
    body, content_type = metrics.exposition(request.app.state.metrics_registry)
    return Response(content=body, media_type=content_type, headers={"Cache-Control": "no-store"})


def queue_registry(db: Database) -> CollectorRegistry:
    """The analysis queue's gauges, read from the database (the truth for every process) at each scrape."""

    def read() -> tuple[dict[str, int], float]:
        with db.session() as session:
            counts = dict(
                session.exec(select(AnalysisJob.status, func.count()).group_by(AnalysisJob.status)).all()
            )
            oldest = session.exec(
                select(func.min(AnalysisJob.created_at)).where(
                    or_(AnalysisJob.status == "pending", AnalysisJob.status == "running")
                )
            ).one()
        age = (utcnow() - oldest).total_seconds() if oldest is not None else 0.0
        return counts, max(age, 0.0)

    registry = CollectorRegistry()
    registry.register(metrics.QueueCollector(read))
    return registry
