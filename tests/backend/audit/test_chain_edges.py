"""The audit chain's edges: the last event modified, and a chain head that does not match; through
`dermalink audit verify` as an operator would run it."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from backend.audit.service import record
from backend.audit.verify import verify_chain
from backend.core.actor import AuditContext


@pytest.fixture
def six_events(app):  # type: ignore[no-untyped-def]
    with app.state.db.session() as session:
        for i in range(6):
            record(
                session,
                AuditContext(actor_role="system"),
                f"test.event{i}",
                resource_type="thing",
                resource_id=i,
            )
        session.commit()


@pytest.fixture
def cli(app, settings, monkeypatch, settings_cache):  # type: ignore[no-untyped-def]
    from backend.cli import _register_all
    from backend.cli import app as cli_app

    monkeypatch.setattr("backend.commands._context", lambda: (settings, app.state.keyring, app.state.db))
    _register_all()
    runner = CliRunner()
    return lambda *args: runner.invoke(cli_app, list(args))


def _sql(app, statement: str, **params) -> None:  # type: ignore[no-untyped-def]
    with app.state.db.engine.begin() as conn:
        conn.execute(text(statement), params)


def _findings(app) -> list[tuple[str, int, str]]:  # type: ignore[no-untyped-def]
    with app.state.db.session() as session:
        return [(f.kind, f.seq, f.message) for f in verify_chain(session, app.state.db.audit_key).findings]


def test_a_modified_last_event_is_found(app, six_events, cli):
    _sql(app, "UPDATE audit_event SET outcome = 'denied' WHERE seq = 6")
    assert _findings(app) == [("modified", 6, "event 6 (test.event5) was modified")]
    result = cli("audit", "verify")
    assert result.exit_code == 1 and "modified   seq 6" in result.output and "BROKEN" in result.output


def test_a_chain_head_that_does_not_match_the_last_event_is_found(app, six_events, cli):
    _sql(app, "UPDATE audit_chain_head SET hash = :h", h="a" * 64)
    findings = _findings(app)
    # Set without the key, the head also fails its own authentication (docs/security.md).
    assert [(kind, seq) for kind, seq, _ in findings] == [("head_forged", 6), ("modified", 6)]
    assert findings[1][2] == "the chain head does not match the last event"
    result = cli("audit", "verify")
    assert result.exit_code == 1 and "the chain head does not match the last event" in result.output


def test_a_head_pointing_past_the_last_event_means_deleted_events(app, six_events, cli):
    _sql(app, "UPDATE audit_chain_head SET seq = 9")
    findings = _findings(app)
    assert [(kind, seq) for kind, seq, _ in findings] == [("deleted", 9), ("head_forged", 9)]
    assert findings[0][2] == "events 7..9 were deleted from the end of the chain"
    assert cli("audit", "verify").exit_code == 1
