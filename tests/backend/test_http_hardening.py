"""HTTP hardening found by probing the running platform: crafted cursors, headers, limits, /docs."""

from __future__ import annotations

import base64

import pytest

from backend.users.models import Role


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


CRAFTED_CURSORS = [
    "W10",  # []
    "WyJ4Il0",  # ["x"]
    "WzBd",  # [0]
    _b64("[Infinity]"),
    _b64("[NaN]"),
    _b64('[1e999, "x", "y"]'),
    _b64('[true, "2026-01-01T00:00:00", "not-a-uuid"]'),
    _b64('[0, "not a date", "00000000-0000-0000-0000-000000000000"]'),
    _b64('[0, 5, "00000000-0000-0000-0000-000000000000"]'),
    _b64('["2026-01-01T00:00:00", {"a": 1}]'),
    _b64('[{"a": 1}]'),
    _b64("[99999999999999999999999999]"),
    "%%%",
]


# Cursors that are a real page position somewhere: /users pages by e-mail, /audit/events by sequence.
VALID_ON = {"/api/v1/users": {"WyJ4Il0"}, "/api/v1/audit/events": {"WzBd"}}


@pytest.mark.parametrize("cursor", CRAFTED_CURSORS)
def test_crafted_cursors_are_400_on_every_paged_list(client, make_user, cursor):
    admin = make_user(Role.admin)
    clinician = make_user(Role.clinician)
    dermatologist = make_user(Role.dermatologist)
    for path, actor in (
        ("/api/v1/users", admin),
        ("/api/v1/audit/events", admin),
        ("/api/v1/cases", clinician),
        ("/api/v1/queue", dermatologist),
    ):
        if cursor in VALID_ON.get(path, ()):
            assert client.get(path, params={"cursor": cursor}, headers=actor.headers).status_code == 200
            continue
        response = client.get(path, params={"cursor": cursor}, headers=actor.headers)
        assert response.status_code == 400, (path, cursor, response.text)
        assert response.json()["type"] == "bad_request", (path, cursor)


APP_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "connect-src 'self'; frame-ancestors 'none'"
)
COMMON_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


def test_security_headers_on_every_kind_of_response(client, make_user):
    clinician = make_user(Role.clinician)
    responses = {
        "web app": client.get("/"),
        "api ok": client.get("/api/v1/users/me", headers=clinician.headers),
        "api 401": client.get("/api/v1/users/me"),
        "api 404": client.get("/api/v1/nothing-here"),
        "api 413": client.post(
            "/api/v1/auth/login", content=b"x" * 2_000_000, headers={"Content-Type": "application/json"}
        ),
        "health": client.get("/healthz"),
        "openapi": client.get("/openapi.json"),
    }
    for name, response in responses.items():
        for header, value in COMMON_HEADERS.items():
            assert response.headers.get(header) == value, (name, header, response.headers)
        assert response.headers["content-security-policy"] == APP_CSP, name
        assert "strict-transport-security" not in response.headers, name  # plain HTTP here
    for name in ("api ok", "api 401", "api 404", "api 413"):
        assert responses[name].headers["cache-control"] == "no-store", name


def test_hsts_only_over_tls_and_forwarded_proto_only_from_a_trusted_proxy(settings):
    from fastapi.testclient import TestClient

    from backend.main import create_app

    direct = create_app(settings)
    with TestClient(direct, base_url="https://dermalink.test") as tls:
        assert "max-age=" in tls.get("/healthz").headers["strict-transport-security"]
    with TestClient(direct, client=("203.0.113.5", 4000)) as spoofing:
        response = spoofing.get("/healthz", headers={"X-Forwarded-Proto": "https"})
        assert "strict-transport-security" not in response.headers  # not a trusted proxy

    proxied = create_app(settings.model_copy(update={"trusted_proxies": ["10.0.0.2"]}))
    with TestClient(proxied, client=("10.0.0.2", 4000)) as via_proxy:
        response = via_proxy.get("/healthz", headers={"X-Forwarded-Proto": "https"})
        assert "max-age=" in response.headers["strict-transport-security"]


def test_docs_use_their_own_local_assets(client):
    page = client.get("/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower() and "https://" not in page.text
    import re

    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets)
    for asset in assets:
        assert asset.startswith("/"), asset  # same origin, no CDN
        fetched = client.get(asset)
        assert fetched.status_code == 200 and len(fetched.content) > 100, asset
    # No inline script: the page runs under the same script-src 'self' as the app.
    assert re.search(r"<script>(?!\s*</script>)", page.text) is None
    assert page.headers["content-security-policy"] == APP_CSP


def test_chunked_body_over_the_limit_is_413(client, settings):
    def chunks():  # no Content-Length: the limit must hold while reading
        for _ in range(settings.max_body_bytes // 10_000 + 10):
            yield b"x" * 10_000

    response = client.post(
        "/api/v1/auth/login", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413, response.text
    assert response.json()["type"] == "payload_too_large"


def test_oversized_request_headers_are_431(client, settings):
    response = client.get("/healthz", headers={"X-Padding": "a" * (settings.max_header_bytes + 10)})
    assert response.status_code == 431 and response.json()["type"] == "header_too_large"
    assert client.get("/healthz", headers={"X-Padding": "a" * 1000}).status_code == 200


def test_every_api_operation_documents_its_errors_in_the_one_shape(client):
    spec = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in spec["components"]["schemas"]  # FastAPI's own 422 shape is gone
    error_ref = "#/components/schemas/ErrorBody"
    assert set(spec["components"]["schemas"]["ErrorBody"]["required"]) == {"type", "detail"}
    operations = [
        (method, path, op)
        for path, item in spec["paths"].items()
        if path.startswith("/api/")
        for method, op in item.items()
    ]
    assert len(operations) > 30
    for method, path, op in operations:
        errors = {code: r for code, r in op["responses"].items() if code[0] in "45"}
        assert {"400", "401", "403", "413", "415", "422", "500"} <= set(errors), (
            method,
            path,
            sorted(errors),
        )
        for code, response in errors.items():
            schema = response["content"]["application/json"]["schema"]
            assert schema == {"$ref": error_ref}, (method, path, code)
    login = spec["paths"]["/api/v1/auth/login"]["post"]["responses"]
    assert {"423", "429"} <= set(login) and "invalid_credentials" in login["401"]["description"]
    case = spec["paths"]["/api/v1/cases/{case_id}"]["get"]["responses"]
    assert "404" in case and "not_found" in case["404"]["description"]


def test_every_422_has_the_one_error_shape(client, make_user):
    admin = make_user(Role.admin)
    responses = [
        client.post("/api/v1/auth/login", json={"email": "a@b.c"}),  # request validation
        client.post(  # the service's own validation (password policy)
            "/api/v1/users",
            headers=admin.headers,
            json={
                "email": "x@hospital.test",
                "full_name": "X",
                "role": "clinician",
                "password": "qwerty123456",
            },
        ),
        client.get("/api/v1/users", headers=admin.headers, params={"limit": "lots"}),  # query validation
    ]
    for response in responses:
        assert response.status_code == 422, response.text
        assert set(response.json()) == {"type", "detail"} and response.json()["type"] == "validation_error"


def test_nul_characters_are_refused_before_the_database(client, make_user):
    """PostgreSQL cannot store NUL in text: found by the schemathesis run as a 500 on consent documents."""
    admin = make_user(Role.admin)
    document = client.post(
        "/api/v1/consent-documents",
        headers=admin.headers,
        json={"version": "nul-1", "requires_reconsent": False, "text": "I agree\u0000 to everything"},
    )
    assert document.status_code == 422 and document.json()["type"] == "validation_error", document.text
    user = client.post(
        "/api/v1/users",
        headers=admin.headers,
        json={
            "email": "n@hospital.test",
            "full_name": "Nul\u0000",
            "role": "clinician",
            "password": "x" * 20,
        },
    )
    assert user.status_code == 422
    for params in ({"action": "auth.\u0000"}, {"cursor": _b64('["a\\u0000"]')}):
        response = client.get(
            "/api/v1/audit/events" if "action" in params else "/api/v1/users",
            params=params,
            headers=admin.headers,
        )
        assert response.status_code == 400 and response.json()["type"] == "bad_request", (
            params,
            response.text,
        )


def test_consent_document_scopes_are_bounded_and_deduplicated(client, make_user):
    """A long list of scopes overflowed the stored column on PostgreSQL (500; found by schemathesis)."""
    admin = make_user(Role.admin)
    body = {"version": "scopes-1", "language": "en", "title": "Consent", "text": "I agree to this. " * 3}
    many = client.post(
        "/api/v1/consent-documents", headers=admin.headers, json={**body, "scopes": ["research"] * 20}
    )
    assert many.status_code == 422 and many.json()["type"] == "validation_error"
    twice = client.post(
        "/api/v1/consent-documents", headers=admin.headers, json={**body, "scopes": ["research", "research"]}
    )
    assert twice.status_code == 201 and twice.json()["scopes"] == ["research"]


def test_even_the_last_resort_500_carries_the_security_headers(app, make_user, monkeypatch):
    from fastapi.testclient import TestClient

    def broken(*_args, **_kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("a bug")

    with TestClient(app, raise_server_exceptions=False) as client:
        clinician = make_user(Role.clinician)
        monkeypatch.setattr(app.state.auth, "live_user", broken)
        response = client.get("/api/v1/users/me", headers=clinician.headers)
    assert response.status_code == 500 and response.json()["type"] == "internal_error"
    for header, value in COMMON_HEADERS.items():
        assert response.headers.get(header) == value, header
    assert response.headers["content-security-policy"] == APP_CSP
    assert response.headers["cache-control"] == "no-store"
