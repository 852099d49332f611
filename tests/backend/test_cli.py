"""The `dermalink` CLI: help, admin create-user."""

from __future__ import annotations

import json
import uuid

from sqlmodel import select
from typer.testing import CliRunner

from backend.bootstrap import DEMO_CONSENT_VERSION
from backend.cli import _register_all
from backend.cli import app as cli
from backend.consent.models import ConsentDocument
from backend.users.models import User

runner = CliRunner()
_register_all()


def test_help_lists_the_commands():
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0
    for command in ("serve", "admin", "audit", "db"):
        assert command in result.output


def test_create_user_then_refuses_a_duplicate_and_a_weak_password(monkeypatch, tmp_path, settings_cache):
    monkeypatch.setenv("DERMALINK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DERMALINK_ENVIRONMENT", "test")
    args = [
        "admin",
        "create-user",
        "--email",
        "First.Admin@hospital.test",
        "--full-name",
        "First Admin",
        "--role",
        "admin",
        "--password",
        "a long enough passphrase",
    ]
    created = runner.invoke(cli, args)
    assert created.exit_code == 0, created.output
    assert "created admin first.admin@hospital.test" in created.output
    duplicate = runner.invoke(cli, args)
    assert duplicate.exit_code == 2 and "already exists" in duplicate.output
    weak = runner.invoke(cli, [*args[:-1], "short"])
    assert weak.exit_code == 2 and "at least 12 characters" in weak.output
    clinician = runner.invoke(
        cli,
        [
            "admin",
            "create-user",
            "--email",
            "gp@hospital.test",
            "--full-name",
            "GP",
            "--role",
            "clinician",
            "--password",
            "a long enough passphrase",
            "--clinic",
            "North Clinic",
        ],
    )
    assert clinician.exit_code == 0, clinician.output
    verify = runner.invoke(cli, ["audit", "verify"])
    assert verify.exit_code == 0 and "intact: 3 events" in verify.output  # 2 users and the clinic


def test_development_mode_creates_demo_accounts_and_consent_document_once(
    database_url, tmp_path, model_repository, shared_dir, capsys
):
    from fastapi.testclient import TestClient

    from backend.main import create_app
    from tests.backend.conftest import make_settings, wipe

    settings = make_settings(
        database_url,
        tmp_path,
        model_repository=model_repository,
        environment="development",
        create_demo_users=True,
    )
    app = create_app(settings)
    wipe(app)
    try:
        with TestClient(app) as client:
            printed = capsys.readouterr().out
            assert "clinician@demo.dermalink.local" in printed and "TOTP secret" in printed
            password = printed.split("clinician@demo.dermalink.local")[1].split("password:")[1].split()[0]
            login = client.post(
                "/api/v1/auth/login", json={"email": "clinician@demo.dermalink.local", "password": password}
            )
            assert login.status_code == 200
            me = client.get(
                "/api/v1/users/me", headers={"Authorization": f"Bearer {login.json()['access_token']}"}
            )
            assert me.json()["clinic_id"] is not None  # the demo clinician can register patients at once
            lesion = min((shared_dir / "data" / "ham10000" / "full_size").glob("*.jpg")).read_bytes()
            _demo_clinician_submits_a_case(client, login.json()["access_token"], lesion)
        with TestClient(create_app(settings)):
            assert "demo accounts" not in capsys.readouterr().out  # shown once only
            with app.state.db.session() as session:  # and the demo consent document only once
                assert len(list(session.exec(select(ConsentDocument)))) == 1
    finally:
        wipe(app)


def _demo_clinician_submits_a_case(client, token: str, jpeg: bytes) -> None:  # type: ignore[no-untyped-def]
    """A fresh development install is usable: consent against the demo template, then a case."""
    headers = {"Authorization": f"Bearer {token}"}
    documents = client.get("/api/v1/consent-documents", headers=headers).json()
    assert [d["version"] for d in documents] == [DEMO_CONSENT_VERSION]
    demo = documents[0]
    assert "TEMPLATE" in demo["title"] and "must be replaced" in demo["text"]
    assert set(demo["scopes"]) == {"ai_analysis", "specialist_sharing", "research"}
    patient = client.post(
        "/api/v1/patients",
        headers=headers,
        json={"full_name": "Demo Patient", "date_of_birth": "1970-01-01", "medical_record_number": "D-1"},
    )
    assert patient.status_code == 201, patient.text
    pid = patient.json()["id"]
    consent = client.post(
        f"/api/v1/patients/{pid}/consents",
        headers=headers,
        json={
            "document_id": demo["id"],
            "scopes": ["ai_analysis", "specialist_sharing"],
            "method": "verbal",
            "witness_name": "Nurse Joy",
        },
    )
    assert consent.status_code == 201, consent.text
    case = client.post(
        "/api/v1/cases",
        headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
        data={"metadata": json.dumps({"patient_id": pid, "age": 54, "sex": "female", "site": "back"})},
        files=[("images", ("lesion.jpg", jpeg, "image/jpeg"))],
    )
    assert case.status_code == 201, case.text


def test_production_publishes_no_consent_document_and_creates_no_accounts(
    database_url, tmp_path, model_repository
):
    """Outside development the first start creates nothing: the real consent text is the admin's job."""
    from backend.bootstrap import create_demo_users
    from backend.services import build_services
    from tests.backend.conftest import make_settings

    # The services of a test instance on this database; only the environment differs for the bootstrap.
    services = build_services(make_settings(database_url, tmp_path, model_repository=model_repository))
    production = make_settings(database_url, tmp_path, environment="production", create_demo_users=True)
    db = services.db
    try:
        with db.session() as session:
            users_before = len(list(session.exec(select(User))))
        assert create_demo_users(db, production, services.auth) is None
        with db.session() as session:
            assert len(list(session.exec(select(User)))) == users_before
            demo = select(ConsentDocument).where(ConsentDocument.version == DEMO_CONSENT_VERSION)
            assert not list(session.exec(demo))
    finally:
        db.dispose()
