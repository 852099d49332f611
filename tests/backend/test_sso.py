"""Single sign-on against a real OpenID Provider (node `oidc-provider`, tests/oidc_provider) on loopback.

The provider runs the real authorization code flow with PKCE; its login step is scripted
(``/interaction/<uid>?user=...&amr=...``). For the attacks, the provider re-signs the ID token in its
token response (wrong audience, already expired, or signed with a second key under the same key id),
so DermaLink's own validation is what refuses them.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from backend.audit.verify import verify_chain
from backend.core.actor import SYSTEM
from backend.sso.models import ExternalIdentity
from backend.users.models import Clinic, Role, User
from backend.users.service import create_user
from tests.backend.conftest import PASSWORD, audit_rows, make_settings
from tests.conftest import REPO

PROVIDER_DIR = REPO / "tests" / "oidc_provider"
CLIENT_ID, CLIENT_SECRET = "dermalink", "test-client-secret-for-the-loopback-provider"
REDIRECT_URI = "http://testserver/api/v1/auth/oidc/callback"
ROLE_MAP = {"dl-clinicians": "clinician", "dl-dermatologists": "dermatologist", "dl-admins": "admin"}


def _user(name: str, groups: list[str], **extra: object) -> dict:
    return {
        "email": f"{name}@hospital.test",
        "email_verified": True,
        "name": name.title(),
        "groups": groups,
        **extra,
    }


USERS = {
    "clara": _user("clara", ["dl-clinicians", "staff"], clinic="North"),
    "derek": _user("derek", ["dl-dermatologists"]),
    "ada": _user("ada", ["dl-admins"]),
    "tom": _user("tom", ["dl-admins"]),  # an admin whose provider proves no second factor
    "vic": _user("vic", ["visitors"]),
    "dora": _user("dora", ["dl-clinicians"]),
}
MFA = "pwd,otp"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def oidc_provider() -> Iterator[str]:
    """Start the provider (after `npm ci` on a fresh checkout); yields its issuer URL."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail("node and npm are needed for the SSO tests (Node 20+, see infra/test.sh)")
    if not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=PROVIDER_DIR,
            check=True,
            capture_output=True,
            timeout=600,
        )
    port = _free_port()
    config = {
        "port": port,
        "clients": [
            {
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "redirect_uris": [REDIRECT_URI],
                "grant_types": ["authorization_code"],
                "response_types": ["code"],
            }
        ],
        "users": USERS,
    }
    process = subprocess.Popen(
        [node, "provider.mjs", json.dumps(config)],
        cwd=PROVIDER_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "NODE_ENV": "test"},
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()  # type: ignore[union-attr]
    seen = []
    try:
        while True:
            try:
                line = lines.get(timeout=120)  # generous: a loaded CI machine starts node slowly
            except queue.Empty:
                pytest.fail(f"the OpenID Provider did not start: {''.join(seen)}")
            seen.append(line)
            if line.startswith("READY "):
                break
        yield line.split()[1]
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture
def provider_mode(oidc_provider: str) -> Iterator:
    """Set the provider's tamper mode for this test; always reset afterwards."""

    def set_mode(mode: str) -> None:
        httpx.post(f"{oidc_provider}/__test/mode", params={"set": mode}, timeout=30).raise_for_status()

    yield set_mode
    set_mode("none")


@pytest.fixture
def settings(database_url, tmp_path, model_repository, oidc_provider):  # type: ignore[no-untyped-def]
    return make_settings(
        database_url,
        tmp_path,
        model_repository=model_repository,
        oidc_issuer=oidc_provider,
        oidc_client_id=CLIENT_ID,
        oidc_client_secret=CLIENT_SECRET,
        oidc_scopes="openid email profile groups",
        oidc_role_map=ROLE_MAP,
        oidc_clinic_claim="clinic",
        oidc_clinic_map={"North": "North Clinic"},
        oidc_provision=True,
        oidc_clock_skew_seconds=5,
    )


def start(client: TestClient) -> str:
    response = client.get("/api/v1/auth/oidc/login", follow_redirects=False)
    assert response.status_code == 302, response.text
    return response.headers["location"]


def provider_login(issuer: str, authorize_url: str, user: str, amr: str = "pwd") -> str:
    """Walk the provider's redirects as a browser, log in as ``user``; returns DermaLink's callback URL."""
    with httpx.Client(timeout=60) as browser:
        response = browser.get(authorize_url)
        for _ in range(10):
            location = urljoin(issuer, response.headers["location"])
            if location.startswith("http://testserver/"):
                return location
            if "/interaction/" in location:
                location += f"?user={user}&amr={amr}"
            response = browser.get(location)
    raise AssertionError("the provider never redirected back to DermaLink")


def callback(client: TestClient, url: str) -> dict[str, str]:
    """Follow the callback; returns the query DermaLink sends the app (``code`` or ``error``)."""
    response = client.get(url.removeprefix("http://testserver"), follow_redirects=False)
    assert response.status_code == 302, response.text
    target = response.headers["location"]
    assert target.startswith("/#/sso?")
    return {k: v[0] for k, v in parse_qs(urlsplit(target.split("#", 1)[1]).query).items()}


def sign_in(client: TestClient, issuer: str, user: str, amr: str = "pwd") -> dict[str, str]:
    return callback(client, provider_login(issuer, start(client), user, amr))


def exchange(client: TestClient, code: str, totp_code: str | None = None) -> httpx.Response:
    body = {"code": code} | ({"totp_code": totp_code} if totp_code else {})
    return client.post("/api/v1/auth/oidc/exchange", json=body)


def denial_reasons(app) -> list[str]:  # type: ignore[no-untyped-def]
    rows = audit_rows(app, action="auth.login", outcome="denied")
    return [r.reason or "" for r in rows if json.loads(r.detail).get("method") == "oidc"]


@pytest.fixture
def north_clinic(app) -> str:  # type: ignore[no-untyped-def]
    with app.state.db.session() as session:
        clinic = Clinic(name="North Clinic")
        session.add(clinic)
        session.commit()
        return str(clinic.id)


@pytest.mark.parametrize(
    ("user", "role", "amr"),
    [("clara", "clinician", "pwd"), ("derek", "dermatologist", "pwd"), ("ada", "admin", MFA)],
)
def test_sign_in_provisions_each_role(app, client, oidc_provider, north_clinic, user, role, amr):
    answer = sign_in(client, oidc_provider, user, amr)
    assert "code" in answer, answer
    tokens = exchange(client, answer["code"])
    assert tokens.status_code == 200, tokens.text
    assert tokens.json()["role"] == role
    headers = {"Authorization": f"Bearer {tokens.json()['access_token']}"}
    me = client.get("/api/v1/users/me", headers=headers).json()
    assert me["email"] == f"{user}@hospital.test" and me["role"] == role
    if role == "clinician":  # the clinic claim, mapped to an existing clinic
        assert me["clinic_id"] == north_clinic
    if role == "admin":  # the provider's amr proved a second factor: admin routes are open without TOTP
        assert client.get("/api/v1/users", headers=headers).status_code == 200
    # The same pair as a password login: the refresh token rotates.
    refreshed = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens.json()["refresh_token"]})
    assert refreshed.status_code == 200
    logins = [r for r in audit_rows(app, action="auth.login", outcome="allowed") if r.actor_id is not None]
    assert [json.loads(r.detail)["method"] for r in logins] == ["oidc"]
    assert {r.action for r in audit_rows(app)} >= {"user.create", "auth.sso_link"}
    # The code is single-use.
    again = exchange(client, answer["code"])
    assert again.status_code == 401 and again.json()["type"] == "invalid_token"
    with app.state.db.session() as session:
        assert verify_chain(session, app.state.db.audit_key).ok


def test_second_sign_in_reuses_the_linked_account(app, client, oidc_provider):
    for _ in range(2):
        answer = sign_in(client, oidc_provider, "derek")
        assert exchange(client, answer["code"]).status_code == 200
    with app.state.db.session() as session:
        users = list(session.exec(select(User).where(User.email == "derek@hospital.test")))
        links = list(session.exec(select(ExternalIdentity).where(ExternalIdentity.subject == "derek")))
    assert len(users) == 1 and len(links) == 1 and links[0].user_id == users[0].id


def test_existing_account_is_linked_by_verified_email_and_role_follows_the_provider(
    app, client, oidc_provider
):
    with app.state.db.session() as session:
        create_user(
            session,
            SYSTEM,
            email="derek@hospital.test",
            full_name="Derek",
            role=Role.clinician,
            password=PASSWORD,
            password_min_length=12,
        )
        session.commit()
    tokens = exchange(client, sign_in(client, oidc_provider, "derek")["code"])
    assert tokens.status_code == 200 and tokens.json()["role"] == "dermatologist"
    updates = audit_rows(app, action="user.update")
    assert json.loads(updates[-1].detail)["role"] == ["clinician", "dermatologist"]


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("audience", "not for DermaLink"),
        ("expired", "expired"),
        ("signature", "signature is not valid"),
    ],
)
def test_tampered_id_tokens_are_refused(app, client, oidc_provider, provider_mode, mode, reason):
    provider_mode(mode)
    answer = sign_in(client, oidc_provider, "derek")
    assert answer.get("error") == "sso_refused" and "code" not in answer
    assert any(reason in r for r in denial_reasons(app)), denial_reasons(app)
    with app.state.db.session() as session:  # nobody was provisioned
        assert session.exec(select(User).where(User.email == "derek@hospital.test")).first() is None


def test_replayed_state_is_refused(app, client, oidc_provider):
    url = provider_login(oidc_provider, start(client), "derek")
    first = callback(client, url)
    assert "code" in first
    replayed = callback(client, url)
    assert replayed.get("error") == "sso_refused"
    assert any("replayed" in r for r in denial_reasons(app))
    assert exchange(client, first["code"]).status_code == 200  # the first sign-in still stands


def test_callback_in_another_browser_is_refused(app, client, oidc_provider):
    url = provider_login(oidc_provider, start(client), "derek")
    with TestClient(app) as other_browser:  # has not got the cookie set by /login
        answer = callback(other_browser, url)
    assert answer.get("error") == "sso_refused"
    assert any("another browser" in r for r in denial_reasons(app))


def test_group_without_a_role_is_refused(app, client, oidc_provider):
    answer = sign_in(client, oidc_provider, "vic")
    assert answer.get("error") == "sso_refused"
    assert any("no DermaLink role" in r for r in denial_reasons(app))
    with app.state.db.session() as session:
        assert session.exec(select(User).where(User.email == "vic@hospital.test")).first() is None


def test_disabled_account_stays_disabled(app, client, oidc_provider):
    with app.state.db.session() as session:
        user = create_user(
            session,
            SYSTEM,
            email="dora@hospital.test",
            full_name="Dora",
            role=Role.clinician,
            password=PASSWORD,
            password_min_length=12,
        )
        user.is_active = False
        session.commit()
    answer = sign_in(client, oidc_provider, "dora")
    assert answer.get("error") == "sso_refused"
    assert "account disabled" in denial_reasons(app)


def test_admin_needs_a_second_factor(app, client, oidc_provider):
    # No MFA at the provider and no DermaLink TOTP: refused, and no admin account is created.
    answer = sign_in(client, oidc_provider, "tom", amr="pwd")
    assert answer.get("error") == "sso_refused"
    assert any("second factor" in r for r in denial_reasons(app))
    # An existing admin with DermaLink TOTP: the code alone is not enough, the TOTP code completes it.
    auth = app.state.auth
    with app.state.db.session() as session:
        admin = create_user(
            session,
            SYSTEM,
            email="tom@hospital.test",
            full_name="Tom",
            role=Role.admin,
            password=PASSWORD,
            password_min_length=12,
        )
        auth.begin_totp_enrolment(session, SYSTEM, admin, None)  # no password check when set up here
        admin.totp_enabled = True
        session.commit()
    code = sign_in(client, oidc_provider, "tom", amr="pwd")["code"]
    missing = exchange(client, code)
    assert missing.status_code == 401 and missing.json()["type"] == "totp_required"
    tokens = exchange(client, code, auth.totp_now(admin))
    assert tokens.status_code == 200, tokens.text
    headers = {"Authorization": f"Bearer {tokens.json()['access_token']}"}
    assert client.get("/api/v1/users", headers=headers).status_code == 200


def test_password_login_can_be_switched_off(database_url, tmp_path, model_repository, oidc_provider):
    from backend.main import create_app
    from tests.backend.conftest import wipe

    settings = make_settings(
        database_url,
        tmp_path,
        model_repository=model_repository,
        oidc_issuer=oidc_provider,
        oidc_client_id=CLIENT_ID,
        oidc_client_secret=CLIENT_SECRET,
        oidc_role_map=ROLE_MAP,
        password_login_enabled=False,
    )
    application = create_app(settings)
    wipe(application)
    try:
        with TestClient(application) as client:
            config = client.get("/api/v1/auth/oidc/config").json()
            assert config == {
                "enabled": True,
                "password_login_enabled": False,
                "display_name": "your hospital account",
                "login_url": "/api/v1/auth/oidc/login",
            }
            refused = client.post(
                "/api/v1/auth/login", json={"email": "a@hospital.test", "password": PASSWORD}
            )
            assert refused.status_code == 403 and refused.json()["type"] == "forbidden"
            rows = audit_rows(application, action="auth.login", outcome="denied")
            assert rows[-1].reason == "password sign-in is switched off"
    finally:
        wipe(application)
        application.state.db.dispose()


def test_sso_is_off_without_an_issuer(database_url, tmp_path, model_repository):
    from backend.main import create_app

    application = create_app(make_settings(database_url, tmp_path, model_repository=model_repository))
    try:
        with TestClient(application) as client:
            assert client.get("/api/v1/auth/oidc/config").json()["enabled"] is False
            assert client.get("/api/v1/auth/oidc/login", follow_redirects=False).status_code == 404
    finally:
        application.state.db.dispose()


def test_unreachable_provider_sends_the_browser_back_with_an_error(database_url, tmp_path, model_repository):
    from backend.main import create_app

    nobody = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    settings = make_settings(
        database_url,
        tmp_path,
        model_repository=model_repository,
        oidc_issuer=nobody,
        oidc_client_id=CLIENT_ID,
        oidc_client_secret=CLIENT_SECRET,
        oidc_role_map=ROLE_MAP,
    )
    application = create_app(settings)
    try:
        with TestClient(application) as client:
            response = client.get("/api/v1/auth/oidc/login", follow_redirects=False)
            assert response.status_code == 302
            assert response.headers["location"].startswith("/#/sso?error=sso_refused")
            assert (
                "discovery document is unavailable"
                in parse_qs(response.headers["location"].split("?", 1)[1])["error_description"][0]
            )
    finally:
        application.state.db.dispose()
