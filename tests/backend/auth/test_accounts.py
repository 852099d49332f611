"""Account life cycle: disabled accounts, what an unlock clears, wrong TOTP codes toward lockout,
refresh-token expiry, tokens signed with an older secret, and every password rule."""

from __future__ import annotations

from datetime import timedelta

import pyotp
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlmodel import select

from backend.auth.models import RefreshToken
from backend.core.clock import utcnow
from backend.core.errors import ValidationFailed
from backend.core.security import check_password_policy
from backend.main import create_app
from backend.users.models import Role, User
from tests.backend.conftest import PASSWORD, audit_rows
from tests.clock import freeze


def login(client, email, password=PASSWORD, **extra):  # type: ignore[no-untyped-def]
    return client.post("/api/v1/auth/login", json={"email": email, "password": password, **extra})


def _user(app, account) -> User:  # type: ignore[no-untyped-def]
    with app.state.db.session() as session:
        return session.get(User, account.user.id)


def test_a_disabled_account_cannot_log_in_refresh_or_use_its_tokens(app, client, make_user):
    admin, account = make_user(Role.admin), make_user(Role.clinician)
    disabled = client.patch(
        f"/api/v1/users/{account.user.id}", headers=admin.headers, json={"is_active": False}
    )
    assert disabled.status_code == 200 and disabled.json()["is_active"] is False

    refused = login(client, account.email)  # the right password: refused like a wrong one
    assert refused.status_code == 401 and refused.json()["type"] == "invalid_credentials"
    assert client.get("/api/v1/users/me", headers=account.headers).status_code == 401
    refresh = client.post("/api/v1/auth/refresh", json={"refresh_token": account.refresh_token})
    assert refresh.status_code == 401 and refresh.json()["detail"] == "refresh token is expired or revoked"
    (denied,) = audit_rows(app, action="auth.login", outcome="denied")
    assert (denied.actor_id, denied.reason) == (account.user.id, "account disabled")
    (change,) = audit_rows(app, action="user.update")
    assert (change.actor_id, change.resource_id, change.outcome) == (
        admin.user.id,
        str(account.user.id),
        "allowed",
    )

    client.patch(f"/api/v1/users/{account.user.id}", headers=admin.headers, json={"is_active": True})
    assert login(client, account.email).status_code == 200


def _from(client, address: str) -> TestClient:  # type: ignore[no-untyped-def]
    """The same app seen from another client address: the throttle counts per address and per account."""
    return TestClient(client.app, client=(address, 50000))


def _guess_from_many_addresses(client, email, attempts: int, **body) -> list:  # type: ignore[no-untyped-def]
    """``attempts`` wrong logins, three per address (under the test settings' 3/minute pair window)."""
    password = body.pop("password", "wrong 12345")
    return [
        login(_from(client, f"203.0.113.{100 + n // 3}"), email, password, **body) for n in range(attempts)
    ]


def test_unlock_clears_the_lock_and_every_counter(app, client, make_user):
    admin, account = make_user(Role.admin), make_user(Role.clinician, login=False)
    per_account = 12  # login_limit_account = "12 per hour" in the test settings
    assert [r.status_code for r in _guess_from_many_addresses(client, account.email, per_account)] == [
        401
    ] * 12
    assert login(_from(client, "198.51.100.40"), account.email).status_code == 423  # even from elsewhere
    locked = _user(app, account)
    assert locked.locked_until is not None and locked.failed_logins == per_account

    unlocked = client.post(f"/api/v1/users/{account.user.id}/unlock", headers=admin.headers)
    assert unlocked.status_code == 200 and unlocked.json()["id"] == str(account.user.id)
    user = _user(app, account)
    assert (user.failed_logins, user.locked_until, user.last_failed_login_at) == (0, None, None)
    (event,) = audit_rows(app, action="user.unlock")
    assert (event.actor_id, event.resource_id, event.outcome) == (
        admin.user.id,
        str(account.user.id),
        "allowed",
    )
    # a fresh start: the next wrong password is the first again, not a throttled one
    fresh = _from(client, "198.51.100.41")
    assert login(fresh, account.email, "wrong password 1234").status_code == 401
    assert _user(app, account).failed_logins == 1
    assert login(fresh, account.email).status_code == 200


def test_wrong_totp_codes_count_toward_lockout(app, client, make_user, monkeypatch):
    clock = freeze(monkeypatch, "backend.auth.service")
    admin = make_user(Role.admin, login=False)  # TOTP enrolled
    secret = app.state.auth._secret(_user(app, admin))
    current = {pyotp.TOTP(secret).at(clock.now + timedelta(seconds=30 * k)) for k in (-1, 0, 1)}
    wrong = next(c for c in ("000000", "111111", "222222", "333333") if c not in current)
    responses = _guess_from_many_addresses(client, admin.email, 12, password=PASSWORD, totp_code=wrong)
    assert all(
        r.status_code == 401 and r.json()["detail"] == "TOTP code is wrong or already used" for r in responses
    )
    assert _user(app, admin).failed_logins == 12
    right = pyotp.TOTP(secret).at(clock.now)
    # the password was right every time, but the wrong codes locked the account: even the right code waits
    assert login(_from(client, "198.51.100.42"), admin.email, totp_code=right).status_code == 423


def test_an_expired_refresh_token_is_refused_and_audited(app, client, make_user):
    account = make_user(Role.dermatologist)
    with app.state.db.session() as session:
        for row in session.exec(select(RefreshToken)):
            row.expires_at = utcnow() - timedelta(seconds=1)
            session.add(row)
        session.commit()
    response = client.post("/api/v1/auth/refresh", json={"refresh_token": account.refresh_token})
    assert response.status_code == 401
    assert response.json() == {"type": "invalid_token", "detail": "refresh token is expired or revoked"}
    (denied,) = audit_rows(app, action="auth.refresh", outcome="denied")
    assert denied.actor_id == account.user.id
    assert denied.reason == "session revoked, expired or account disabled"


def test_tokens_signed_with_an_older_secret_work_only_while_it_is_listed(app, client, make_user, settings):
    old, new = "o" * 40 + "ld-secret", "n" * 40 + "ew-secret"
    first = create_app(settings.model_copy(update={"secret_key": SecretStr(old)}))
    rotated = create_app(
        settings.model_copy(update={"secret_key": SecretStr(new), "previous_secret_keys": [SecretStr(old)]})
    )
    dropped = create_app(
        settings.model_copy(update={"secret_key": SecretStr(new), "previous_secret_keys": []})
    )
    account = make_user(Role.clinician, login=False)
    try:
        with TestClient(first) as c1, TestClient(rotated) as c2, TestClient(dropped) as c3:
            token = login(c1, account.email).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            assert c2.get("/api/v1/users/me", headers=headers).json()["email"] == account.email
            refused = c3.get("/api/v1/users/me", headers=headers)
            assert refused.status_code == 401 and refused.json()["type"] == "invalid_token"
            # the rotated server signs new tokens with the new secret only
            fresh = login(c2, account.email).json()["access_token"]
            assert c3.get("/api/v1/users/me", headers={"Authorization": f"Bearer {fresh}"}).status_code == 200
            assert c1.get("/api/v1/users/me", headers={"Authorization": f"Bearer {fresh}"}).status_code == 401
    finally:
        for application in (first, rotated, dropped):
            application.state.db.dispose()


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("short pass", "must be at least 12 characters long"),
        ("a" * 120 + "bcdefghij" * 16, "must be at most 256 characters long"),
        ("abababababababab", "must contain at least 5 different characters"),
        ("dermalink123", "is too easy to guess"),  # zxcvbn knows DermaLink's own words
        ("Letmein12345", "is too easy to guess"),  # case does not help
        ("qwerty123456", "is too easy to guess"),
        ("P@ssw0rd2024", "is too easy to guess"),
        ("my name is Jane.Doe, hi", "must not contain the e-mail name"),
    ],
)
def test_every_password_rule(password, problem):
    with pytest.raises(ValidationFailed) as error:
        check_password_policy(password, email="jane.doe@hospital.test", min_length=12)
    assert problem in str(error.value.detail)


def test_a_password_that_breaks_several_rules_names_each_and_a_good_one_passes():
    with pytest.raises(ValidationFailed) as error:
        check_password_policy("aaaa", email="aaaa@x.test", min_length=12)
    assert str(error.value.detail) == (
        "password must be at least 12 characters long; must contain at least 5 different characters; "
        "must not contain the e-mail name"
    )
    check_password_policy("a much better passphrase", email="jane.doe@hospital.test", min_length=12)
    check_password_policy("jo is short: fine", email="jo@hospital.test", min_length=12)  # < 4 chars


def test_the_api_applies_the_policy_on_create_and_change(app, client, make_user):
    admin = make_user(Role.admin)
    body = {"email": "new.user@hospital.test", "full_name": "New User", "role": "clinician"}
    weak = client.post("/api/v1/users", headers=admin.headers, json={**body, "password": "new.user-2024!!"})
    assert weak.status_code == 422 and weak.json()["detail"] == "password must not contain the e-mail name"
    assert audit_rows(app, action="user.create", actor_id=admin.user.id) == []
    created = client.post(
        "/api/v1/users", headers=admin.headers, json={**body, "password": "four seasons in one day"}
    )
    assert created.status_code == 201 and created.json()["email"] == "new.user@hospital.test"
    (event,) = audit_rows(app, action="user.create", actor_id=admin.user.id)
    assert (event.outcome, event.resource_id) == ("allowed", created.json()["id"])
