"""The `dermalink` CLI: help, admin create-user."""

from __future__ import annotations

from typer.testing import CliRunner

from backend.cli import _register_all, app as cli

runner = CliRunner()
_register_all()


def test_help_lists_the_commands():
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0
    for command in ("serve", "admin", "audit", "db"):
        assert command in result.output


def test_create_user_then_refuses_a_duplicate_and_a_weak_password(monkeypatch, tmp_path):
    monkeypatch.setenv("DERMALINK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DERMALINK_ENVIRONMENT", "test")
    from backend.config import get_settings

    get_settings.cache_clear()
    args = ["admin", "create-user", "--email", "First.Admin@hospital.test", "--full-name", "First Admin",
            "--role", "admin", "--password", "a long enough passphrase"]  # fmt: skip
    created = runner.invoke(cli, args)
    assert created.exit_code == 0, created.output
    assert "created admin first.admin@hospital.test" in created.output
    duplicate = runner.invoke(cli, args)
    assert duplicate.exit_code == 2 and "already exists" in duplicate.output
    weak = runner.invoke(cli, [*args[:-1], "short"])
    assert weak.exit_code == 2 and "at least 12 characters" in weak.output
    verify = runner.invoke(cli, ["audit", "verify"])
    assert verify.exit_code == 0 and "intact: 1 events" in verify.output
    get_settings.cache_clear()
