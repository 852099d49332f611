"""The `dermalink` CLI: help, admin create-user."""

from __future__ import annotations

from typer.testing import CliRunner

from backend.cli import _register_all
from backend.cli import app as cli

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


def test_development_mode_creates_demo_accounts_once(database_url, tmp_path, model_repository, capsys):
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
        with TestClient(create_app(settings)):
            assert "demo accounts" not in capsys.readouterr().out  # shown once only
    finally:
        wipe(app)
