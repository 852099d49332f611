"""Malformed, oversized, hostile input: precise 4xx errors, nothing stored changes."""

from __future__ import annotations

import pytest

from backend.users.models import Role
from tests.backend.conftest import audit_rows


def _user_count(client, admin) -> int:  # type: ignore[no-untyped-def]
    return len(client.get("/api/v1/users", headers=admin.headers, params={"limit": 200}).json()["items"])


def test_malformed_json_is_400(client):
    response = client.post(
        "/api/v1/auth/login", content=b'{"email": "a@b.c", ', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400 and response.json()["type"] == "malformed_json"


def test_wrong_content_type_is_415(client):
    response = client.post(
        "/api/v1/auth/login", content=b"email=a&password=b", headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 415 and "application/json" in response.json()["detail"]


def test_oversized_body_is_413(client, settings):
    big = b'{"email": "' + b"a" * (settings.max_body_bytes + 10) + b'"}'
    response = client.post("/api/v1/auth/login", content=big, headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and response.json()["type"] == "payload_too_large"


def test_unknown_fields_are_422(client):
    response = client.post("/api/v1/auth/login", json={"email": "a@b.c", "password": "x", "is_admin": True})
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "extra_forbidden"


@pytest.mark.parametrize(
    "field,value",
    [
        ("email", "x' OR '1'='1@hospital.test"),
        ("email", "a" * 300 + "@hospital.test"),
        ("full_name", "a" * 5000),
        ("full_name", "Robert'); DROP TABLE user_account;--"),
        ("role", "superuser"),
        ("password", "p" * 10_000),
    ],
)
def test_hostile_strings_are_refused_or_stored_verbatim_and_change_nothing_else(
    client, make_user, field, value
):
    admin = make_user(Role.admin)
    before = _user_count(client, admin)
    body = {
        "email": "new@hospital.test",
        "full_name": "New",
        "role": "clinician",
        "password": "a long passphrase",
    }
    body[field] = value
    response = client.post("/api/v1/users", headers=admin.headers, json=body)
    if field == "full_name" and len(value) < 200:
        # A SQL-ish name is just a name: stored verbatim, and the table is still there.
        assert response.status_code == 201 and response.json()["full_name"] == value
        assert _user_count(client, admin) == before + 1
    else:
        assert response.status_code == 422, response.text
        assert _user_count(client, admin) == before


def test_duplicate_user_is_409_and_audit_shows_one_create(app, client, make_user):
    admin = make_user(Role.admin)
    body = {
        "email": "dup@hospital.test",
        "full_name": "Dup",
        "role": "clinician",
        "password": "a long passphrase",
    }
    assert client.post("/api/v1/users", headers=admin.headers, json=body).status_code == 201
    again = client.post("/api/v1/users", headers=admin.headers, json={**body, "email": "DUP@hospital.test"})
    assert again.status_code == 409 and again.json()["type"] == "conflict"
    creates = [e for e in audit_rows(app, action="user.create") if e.actor_id == admin.user.id]
    assert len(creates) == 1


def test_unknown_route_and_method_use_the_error_shape(client):
    assert client.get("/api/v1/nothing-here").json()["type"] == "not_found"
    response = client.delete("/api/v1/users/me")
    assert response.status_code == 405 and response.json()["type"] == "method_not_allowed"


def test_request_id_is_echoed_or_generated(client):
    assert client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == "abc-123"
    generated = client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"}).headers["x-request-id"]
    assert generated != "bad id with spaces" and len(generated) == 32


def test_health_readiness_and_docs(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["database"]["ok"] is True
    assert client.get("/docs").status_code == 200
    assert "/api/v1/auth/login" in client.get("/openapi.json").json()["paths"]
    assert "DermaLink" in client.get("/").text


def test_readiness_says_why_the_model_is_missing(database_url, tmp_path):
    from fastapi.testclient import TestClient

    from backend.main import create_app
    from tests.backend.conftest import make_settings

    app = create_app(make_settings(database_url, tmp_path, model_repository=tmp_path / "empty"))
    with TestClient(app) as client:
        ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["status"] == "not_ready"
    assert ready.json()["checks"]["database"]["ok"] is True
    assert "ham10000_mobilenetv2" in ready.json()["checks"]["model"]["detail"]
