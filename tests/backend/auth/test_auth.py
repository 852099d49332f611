"""Login, refresh-token rotation and reuse detection, logout, lockout, TOTP, hostile tokens."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pyotp
import pytest
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


def test_a_token_needs_its_own_live_login(app, client, make_user):
    """Each request's one query for user and login: a token naming another user's login, or a login that
    has expired, is refused (401) like a revoked one."""
    alice, bob = make_user(Role.clinician), make_user(Role.clinician)
    with app.state.db.session() as session:
        bobs_login = session.exec(select(AuthSession).where(AuthSession.user_id == bob.user.id)).one()
    forged, _ = app.state.auth.tokens.issue_access(alice.user.id, "clinician", bobs_login.id)
    assert client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    assert client.get("/api/v1/users/me", headers=alice.headers).status_code == 200
    with app.state.db.session() as session:
        login_row = session.exec(select(AuthSession).where(AuthSession.user_id == alice.user.id)).one()
        login_row.expires_at = utcnow() - timedelta(seconds=1)
        session.add(login_row)
        session.commit()
    expired = client.get("/api/v1/users/me", headers=alice.headers)
    assert expired.status_code == 401 and expired.json()["type"] == "invalid_token"


def _from(client, address: str):  # type: ignore[no-untyped-def]
    """The same app seen from another client address (TestClient lets the test choose it)."""
    from fastapi.testclient import TestClient

    return TestClient(client.app, client=(address, 50000))


def test_failed_logins_throttle_the_guessing_address_not_the_clinician(app, client, make_user):
    """Test windows: 3/minute and 6/15 minutes per address and account, 12/hour per account."""
    account = make_user(Role.clinician, login=False)
    attacker = _from(client, "203.0.113.7")
    statuses = [login(attacker, account.email, "wrong password 1234").status_code for _ in range(3)]
    assert statuses == [401, 401, 401]
    throttled = login(attacker, account.email, PASSWORD)  # even the right password must wait now
    assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) >= 1
    # ... but only from the guessing address: the clinician at their own desk logs in.
    assert login(_from(client, "198.51.100.20"), account.email).status_code == 200
    assert audit_rows(app, action="auth.login", outcome="denied", reason="throttled (pair)")


def test_unknown_and_real_emails_have_the_same_throttling_pattern(client, make_user):
    account = make_user(Role.clinician, login=False)
    patterns = []
    for email, address in ((account.email, "203.0.113.8"), ("nobody@hospital.test", "203.0.113.9")):
        source = _from(client, address)
        responses = [login(source, email, "wrong password 1234") for _ in range(5)]
        patterns.append([(r.status_code, r.json()["type"]) for r in responses])
    assert patterns[0] == patterns[1]
    assert patterns[0][:3] == [(401, "invalid_credentials")] * 3
    assert patterns[0][3:] == [(429, "too_many_requests")] * 2


def test_one_address_spraying_many_accounts_is_throttled(client, make_user):
    sprayer = _from(client, "203.0.113.10")
    statuses = [
        login(sprayer, f"user{i}@hospital.test", "wrong password 1234").status_code for i in range(21)
    ]
    assert statuses[:20] == [401] * 20 and statuses[20] == 429  # 20 per 15 minutes per address


def test_many_addresses_guessing_one_account_lock_it_and_an_admin_unlocks(app, client, make_user):
    account = make_user(Role.clinician, login=False)
    for i in range(12):  # 12 per hour per account, from 4 addresses (3 each stays under their own window)
        assert (
            login(_from(client, f"203.0.113.{20 + i // 3}"), account.email, "wrong 12345").status_code == 401
        )
    locked = login(_from(client, "198.51.100.21"), account.email)
    assert locked.status_code == 423 and locked.json()["type"] == "account_locked"
    assert int(locked.headers["Retry-After"]) >= 1
    assert audit_rows(app, action="auth.lockout")
    admin = make_user(Role.admin)
    unlock = client.post(f"/api/v1/users/{account.user.id}/unlock", headers=admin.headers)
    assert unlock.status_code == 200 and unlock.json()["locked_until"] is None
    assert login(_from(client, "198.51.100.21"), account.email).status_code == 200


def test_throttle_shares_its_windows_through_redis(settings):
    """Two server processes (here: two throttles) on one Redis see one count."""
    import uuid

    import redis

    from backend.auth.throttle import LoginThrottle

    url = "redis://127.0.0.1:6379/5"
    try:
        redis.Redis.from_url(url).ping()
    except redis.ConnectionError:
        pytest.fail("Redis is expected at 127.0.0.1:6379 (infra/test.sh starts it)")
    email = f"{uuid.uuid4().hex}@hospital.test"
    limits = {"per_pair": "3 per minute", "per_address": "100 per minute", "per_account": "100 per minute"}
    first, second = LoginThrottle(url, **limits), LoginThrottle(url, **limits)
    for _ in range(2):
        first.failed("203.0.113.30", email)
    assert second.check("203.0.113.30", email) is None
    second.failed("203.0.113.30", email)
    refusal = first.check("203.0.113.30", email)
    assert refusal is not None and refusal.scope == "pair" and refusal.retry_after >= 1
    first.clear_pair("203.0.113.30", email)
    assert second.check("203.0.113.30", email) is None


def test_totp_enrolment_and_login(app, client, make_user, monkeypatch):
    account = make_user(Role.clinician)
    # Frozen mid-step: a real 30 s step boundary between confirm and login would make the replay valid.
    clock = freeze(monkeypatch, "backend.auth.service")
    assert client.post("/api/v1/auth/totp/enrol", headers=account.headers).status_code == 422
    wrong = client.post("/api/v1/auth/totp/enrol", headers=account.headers, json={"password": "not it 12345"})
    assert wrong.status_code == 401 and wrong.json()["type"] == "invalid_credentials"
    enrol = client.post("/api/v1/auth/totp/enrol", headers=account.headers, json={"password": PASSWORD})
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
    # the next step's code (one step of drift allowed) works once, then is spent too; from another address,
    # since the wrong enrolment password and the two replays filled this address's window for the account
    desk = _from(client, "198.51.100.30")
    assert login(desk, account.email, totp_code=code(1)).status_code == 200
    assert login(desk, account.email, totp_code=code(1)).status_code == 401
    clock.advance(seconds=60)  # two steps later, that step's code works
    assert login(desk, account.email, totp_code=code()).status_code == 200


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


def test_password_change_ends_the_other_logins_and_keeps_this_one(client, make_user):
    account = make_user(Role.clinician)
    other = login(client, account.email).json()  # e.g. a stolen login on another device
    other_headers = {"Authorization": f"Bearer {other['access_token']}"}
    assert client.get("/api/v1/users/me", headers=other_headers).status_code == 200
    changed = client.post(
        "/api/v1/auth/password",
        headers=account.headers,
        json={"current_password": PASSWORD, "new_password": "a much better passphrase"},
    )
    assert changed.status_code == 204
    assert client.get("/api/v1/users/me", headers=other_headers).status_code == 401
    refresh = client.post("/api/v1/auth/refresh", json={"refresh_token": other["refresh_token"]})
    assert refresh.status_code == 401
    assert client.get("/api/v1/users/me", headers=account.headers).status_code == 200


def test_current_password_guesses_are_throttled_like_logins(app, client, make_user):
    account = make_user(Role.clinician)
    body = {"current_password": "a wrong guess 123", "new_password": "a much better passphrase"}
    statuses = [
        client.post("/api/v1/auth/password", headers=account.headers, json=body).status_code for _ in range(4)
    ]
    assert statuses == [401, 401, 401, 429]
    right = {**body, "current_password": PASSWORD}
    assert client.post("/api/v1/auth/password", headers=account.headers, json=right).status_code == 429
    assert audit_rows(app, action="auth.reauthenticate", outcome="denied")


@pytest.mark.parametrize(
    "weak", ["qwerty123456", "Welcome12345", "P@ssw0rd2024", "dermalink2024", "Password1234!"]
)
def test_guessable_passwords_are_refused_with_a_reason(client, make_user, weak):
    account = make_user(Role.clinician)
    response = client.post(
        "/api/v1/auth/password",
        headers=account.headers,
        json={"current_password": PASSWORD, "new_password": weak},
    )
    assert response.status_code == 422, weak
    assert response.json()["type"] == "validation_error"
    assert response.json()["detail"].startswith("password is too easy to guess"), response.text


def test_access_token_is_refused_when_its_session_is_someone_elses(app, client, make_user):
    victim = make_user(Role.admin)
    mallory = make_user(Role.clinician)
    with app.state.db.session() as session:
        victim_login = session.exec(select(AuthSession).where(AuthSession.user_id == victim.user.id)).first()
    # A token for Mallory's own account that names the admin's live login (as a key leak or an issuing
    # bug could produce): the login is live, but it is not Mallory's.
    token, _ = app.state.auth.tokens.issue_access(mallory.user.id, "clinician", victim_login.id)
    response = client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401 and response.json()["type"] == "invalid_token"


def test_replacing_totp_needs_the_password_and_a_current_code(app, client, make_user):
    account = make_user(Role.admin)  # enrolled by the fixture
    with app.state.db.session() as session:
        user = session.get(User, account.user.id)
        user.totp_last_step = None  # the fixture's login used this step's code
        session.add(user)
        session.commit()
        old_code = app.state.auth.totp_now(user)
    enrol = "/api/v1/auth/totp/enrol"
    no_code = client.post(enrol, headers=account.headers, json={"password": PASSWORD})
    assert no_code.status_code == 400 and "totp_code" in no_code.json()["detail"]
    no_password = client.post(
        enrol, headers=account.headers, json={"password": "wrong 12345", "totp_code": old_code}
    )
    assert no_password.status_code == 401
    wrong_code = "000000" if old_code != "000000" else "111111"
    bad = client.post(enrol, headers=account.headers, json={"password": PASSWORD, "totp_code": wrong_code})
    assert bad.status_code == 401
    replaced = client.post(enrol, headers=account.headers, json={"password": PASSWORD, "totp_code": old_code})
    assert replaced.status_code == 200, replaced.text
    new = pyotp.TOTP(replaced.json()["secret"])
    confirm = client.post("/api/v1/auth/totp/confirm", headers=account.headers, json={"code": new.now()})
    assert confirm.status_code == 204
    assert audit_rows(app, action="auth.totp_replace")
