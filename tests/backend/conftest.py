"""Fixtures for API tests: an app per test on the session's database, users of each role, logins."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import text

from backend.config import Settings
from backend.core.security import use_cheapest_hashing_for_tests
from backend.main import create_app
from backend.models import metadata
from backend.users.models import Role, User
from tests.conftest import MASTER_KEY, REPO, standin_allowed

MODEL = "ham10000_mobilenetv2"

PASSWORD = "correct horse battery staple"
use_cheapest_hashing_for_tests()


def make_settings(database_url: str, data_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "environment": "test",
        "data_dir": data_dir,
        "database_url": database_url,
        "master_key": SecretStr(MASTER_KEY),
        "create_demo_users": False,
        "auto_migrate": False,
        # Small windows so that throttling tests need few attempts.
        "login_limit_pair": "3 per minute; 6 per 15 minutes",
        "login_limit_address": "20 per 15 minutes",
        "login_limit_account": "12 per hour",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def wipe(app) -> None:  # type: ignore[no-untyped-def]
    """Empty every table and reset the audit chain, so each test starts from nothing."""
    with app.state.db.engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            if table.name == "audit_chain_head":
                conn.execute(table.delete())  # back to a new database's genesis head (tests delete it)
                conn.execute(
                    text("INSERT INTO audit_chain_head (id, seq, hash) VALUES (1, 0, :h)"), {"h": "0" * 64}
                )
            else:
                conn.execute(table.delete())


@pytest.fixture(scope="session")
def model_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped model when it is there; otherwise the stand-in ONNX model in the same layout."""
    if (REPO / "model_repository" / MODEL / "1" / "model.onnx").exists():
        return REPO / "model_repository"
    standin_allowed(f"model_repository/{MODEL}/1/model.onnx")
    from benchmarks.standin import build_repository

    return build_repository(tmp_path_factory.mktemp("models"))


@pytest.fixture
def settings(database_url: str, tmp_path: Path, model_repository: Path) -> Settings:
    return make_settings(database_url, tmp_path, model_repository=model_repository)


@pytest.fixture
def app(settings: Settings) -> Iterator:
    application = create_app(settings)
    wipe(application)
    yield application
    wipe(application)
    application.state.db.dispose()


@pytest.fixture
def client(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(app) as test_client:
        yield test_client


@dataclass
class Account:
    user: User
    email: str
    password: str
    headers: dict[str, str]
    refresh_token: str


@pytest.fixture
def make_user(app, client: TestClient) -> Callable[..., Account]:  # type: ignore[no-untyped-def]
    """A factory: create a user of ``role`` (admins get TOTP enrolled; ``clinic_id`` places clinicians in
    a clinic) through the service, and log in through the API; returns its bearer headers."""
    from backend.core.actor import SYSTEM
    from backend.users.service import create_user

    counter = {"n": 0}

    def factory(
        role: Role = Role.clinician, *, login: bool = True, totp: bool | None = None, clinic_id=None
    ) -> Account:  # type: ignore[no-untyped-def]
        counter["n"] += 1
        email = f"{role.value}{counter['n']}@hospital.test"
        auth = app.state.auth
        with app.state.db.session() as session:
            user = create_user(
                session,
                SYSTEM,
                email=email,
                full_name=f"Test {role.value}",
                role=role,
                password=PASSWORD,
                password_min_length=12,
                clinic_id=clinic_id,
            )
            if totp if totp is not None else role is Role.admin:
                auth.begin_totp_enrolment(session, SYSTEM, user, None)
                user.totp_enabled = True
            session.commit()
        account = Account(user=user, email=email, password=PASSWORD, headers={}, refresh_token="")
        if login:
            body = {"email": email, "password": PASSWORD}
            if user.totp_enabled:
                body["totp_code"] = auth.totp_now(user)
            response = client.post("/api/v1/auth/login", json=body)
            assert response.status_code == 200, response.text
            account.headers = {"Authorization": f"Bearer {response.json()['access_token']}"}
            account.refresh_token = response.json()["refresh_token"]
        return account

    return factory


def audit_rows(app, **where: str) -> list:  # type: ignore[no-untyped-def]
    from sqlmodel import select

    from backend.audit.models import AuditEvent

    with app.state.db.session() as session:
        query = select(AuditEvent).order_by(AuditEvent.seq)
        for name, value in where.items():
            query = query.where(getattr(AuditEvent, name) == value)
        return list(session.exec(query))
