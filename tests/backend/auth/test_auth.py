"""Login, refresh-token rotation and reuse detection, logout, lockout, TOTP, hostile tokens."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pyotp
from sqlmodel import select

from backend.auth.models import AuthSession
from backend.core.clock import utcnow
from backend.users.models import Role, User
from tests.backend.conftest import PASSWORD, audit_rows
from tests.clock import freeze


def login(client, email, password=PASSWORD, **extra):  # type: ignore[no-untyped-def]
    return client.post("/api/v1/auth/login", json={"email": email, "password": password, **extra})


def test_login_returns_tokens_and_is_audited(app, client, make_user):
    account = make_user(Role.clinician, login=False)
    response = login(client, account.email)
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer" and body["role"] == "clinician"
    me = client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200 and me.json()["email"] == account.email
    events = audit_rows(app, action="auth.login")
    assert [e.outcome for e in events] == ["allowed"]
    assert events[0].actor_id == account.user.id


def test_wrong_password_and_unknown_user_are_refused_alike_and_audited(app, client, make_user):
    account = make_user(Role.clinician, login=False)
    wrong = login(client, account.email, "not the password at all")
    unknown = login(client, "nobody@hospital.test", "not the password at all")
    assert wrong.status_code == unknown.status_code == 401
    assert (
        wrong.json()
        == unknown.json()
        == {"type": "invalid_credentials", "detail": "e-mail or password is wrong"}
    )
    denied = audit_rows(app, action="auth.login", outcome="denied")
    assert {e.reason for e in denied} == {"wrong password", "unknown account"}


def test_refresh_rotates_and_reuse_revokes_the_whole_family(app, client, make_user):
    account = make_user(Role.dermatologist)
    first = client.post("/api/v1/auth/refresh", json={"refresh_token": account.refresh_token})
    assert first.status_code == 200
    rotated = first.json()
    assert rotated["refresh_token"] != account.refresh_token

    # The old token comes back (stolen copy): the whole login is revoked.
    reuse = client.post("/api/v1/auth/refresh", json={"refresh_token": account.refresh_token})
    assert reuse.status_code == 401 and reuse.json()["type"] == "invalid_token"
    assert "revoked" in reuse.json()["detail"]
    # ...including the newest refresh token and every access token of that login.
    assert (
        client.post("/api/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]}).status_code
        == 401
    )
    new_access = {"Authorization": f"Bearer {rotated['access_token']}"}
    assert client.get("/api/v1/users/me", headers=new_access).status_code == 401
    assert client.get("/api/v1/users/me", headers=account.headers).status_code == 401
    (reuse_event,) = audit_rows(app, action="auth.refresh_reuse")
    assert (reuse_event.actor_id, reuse_event.outcome, reuse_event.resource_type) == (
        account.user.id,
        "denied",
        "auth_session",
    )


def test_logout_revokes_access_and_refresh(client, make_user):
    account = make_user(Role.clinician)
    assert client.post("/api/v1/auth/logout", headers=account.headers).status_code == 204
    assert client.get("/api/v1/users/me", headers=account.headers).status_code == 401
    refresh = client.post("/api/v1/auth/refresh", json={"refresh_token": account.refresh_token})
    assert refresh.status_code == 401


def test_failed_logins_slow_down_then_lock_and_the_lock_expires(app, client, make_user, monkeypatch):
    account = make_user(Role.clinician, login=False)
    clock = freeze(monkeypatch, "backend.auth.service")  # the 1 s slow-down window cannot pass mid-test
    statuses = []
    for _ in range(3):  # login_slowdown_after = 3 in the test settings
        statuses.append(login(client, account.email, "wrong password 1234").status_code)
    assert statuses == [401, 401, 401]
    throttled = login(client, account.email, PASSWORD)  # even the right password must wait now
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "2"  # 2**0 s, rounded up
    assert throttled.json()["type"] == "too_many_requests"

    # Let each wait pass until the account locks (login_lockout_after = 6).
    db = app.state.db
    for expected in (4, 5, 6):
        clock.advance(minutes=5)
        assert login(client, account.email, "wrong password 1234").status_code == 401
        with db.session() as session:
            assert (
                session.exec(select(User).where(User.email == account.email)).one().failed_logins == expected
            )
    locked = login(client, account.email, PASSWORD)
    assert locked.status_code == 423 and locked.json()["type"] == "account_locked"
    (lockout,) = audit_rows(app, action="auth.lockout")
    assert (lockout.actor_id, lockout.resource_id, lockout.outcome) == (
        account.user.id,
        str(account.user.id),
        "denied",
    )
    reasons = [e.reason for e in audit_rows(app, action="auth.login", outcome="denied")]
    assert reasons == ["wrong password"] * 3 + ["throttled"] + ["wrong password"] * 3 + ["account locked"]

    clock.advance(minutes=app.state.settings.login_lockout_minutes, seconds=1)  # the lock expires
    assert login(client, account.email, PASSWORD).status_code == 200
    with db.session() as session:  # and a success clears the counters
        user = session.exec(select(User).where(User.email == account.email)).one()
        assert (user.failed_logins, user.last_failed_login_at, user.locked_until) == (0, None, None)


def test_totp_enrolment_and_login(app, client, make_user, monkeypatch):
    account = make_user(Role.clinician)
    # Frozen mid-step: a real 30 s step boundary between confirm and login would make the replay valid.
    clock = freeze(monkeypatch, "backend.auth.service")
    enrol = client.post("/api/v1/auth/totp/enrol", headers=account.headers)
    assert enrol.status_code == 200
    data = enrol.json()
    assert data["otpauth_uri"].startswith("otpauth://totp/DermaLink:")
    assert data["qr_svg_data_uri"].startswith("data:image/svg+xml")
    totp = pyotp.TOTP(data["secret"])

    def code(offset_steps: int = 0) -> str:
        return totp.at(clock.now + timedelta(seconds=30 * offset_steps))

    wrong = next(c for c in ("000000", "111111", "222222") if c not in {code(-1), code(0), code(1)})
    bad = client.post("/api/v1/auth/totp/confirm", headers=account.headers, json={"code": wrong})
    assert bad.status_code == 400 and "TOTP code is wrong" in bad.json()["detail"]
    ok = client.post("/api/v1/auth/totp/confirm", headers=account.headers, json={"code": code()})
    assert ok.status_code == 204

    missing = login(client, account.email)
    assert missing.status_code == 401 and missing.json()["type"] == "totp_required"
    # The code used to confirm cannot be replayed within its time step, nor can the previous step's.
    for old in (code(), code(-1)):
        replay = login(client, account.email, totp_code=old)
        assert replay.status_code == 401 and replay.json()["detail"] == "TOTP code is wrong or already used"
    # the next step's code (one step of drift allowed) works once, then is spent too
    assert login(client, account.email, totp_code=code(1)).status_code == 200
    assert login(client, account.email, totp_code=code(1)).status_code == 401
    clock.advance(seconds=60)  # two steps later, that step's code works
    assert login(client, account.email, totp_code=code()).status_code == 200


def test_admin_without_totp_cannot_act_as_admin(client, make_user):
    admin = make_user(Role.admin, totp=False)
    response = client.get("/api/v1/users", headers=admin.headers)
    assert response.status_code == 403
    assert "TOTP" in response.json()["detail"]


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_hostile_tokens_are_refused_and_audited(app, client, make_user):
    account = make_user(Role.clinician)
    access = account.headers["Authorization"].split()[1]
    header, payload, signature = access.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    forged_role = _b64({**claims, "role": "admin"})
    cases = {
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.",
        "forged claims": f"{header}.{forged_role}.{signature}",
        "refresh as access": account.refresh_token,
        "garbage": "not-a-token",
        "very long": "a" * 5000,
    }
    for name, token in cases.items():
        response = client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, name
        assert response.json()["type"] == "invalid_token", name
    assert len(audit_rows(app, action="auth.access", outcome="denied")) == len(cases)


def test_expired_access_token_is_refused(app, client, make_user):
    account = make_user(Role.clinician, login=False)
    tokens = app.state.auth.tokens
    with app.state.db.session() as session:
        login_row = AuthSession(user_id=account.user.id, expires_at=utcnow() + timedelta(days=1))
        session.add(login_row)
        session.commit()
    tokens.access_lifetime = timedelta(seconds=-5)
    expired, _ = tokens.issue_access(account.user.id, "clinician", login_row.id)
    response = client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {expired}"})
    assert response.status_code == 401 and "expired" in response.json()["detail"].lower()


def test_password_change_enforces_policy(client, make_user):
    account = make_user(Role.clinician)
    weak = client.post(
        "/api/v1/auth/password",
        headers=account.headers,
        json={"current_password": PASSWORD, "new_password": "short"},
    )
    assert weak.status_code == 422 and "at least 12" in weak.json()["detail"]
    wrong = client.post(
        "/api/v1/auth/password",
        headers=account.headers,
        json={"current_password": "nope nope nope", "new_password": "a much better passphrase"},
    )
    assert wrong.status_code == 401
    ok = client.post(
        "/api/v1/auth/password",
        headers=account.headers,
        json={"current_password": PASSWORD, "new_password": "a much better passphrase"},
    )
    assert ok.status_code == 204
    assert login(client, account.email, "a much better passphrase").status_code == 200
