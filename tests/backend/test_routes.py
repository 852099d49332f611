"""Every API route: anonymous -> 401, wrong role -> 403, missing -> 404, valid -> success.

`test_every_route_is_in_the_matrix` fails when a new route is added without a row here.
"""

from __future__ import annotations

import uuid

import pytest

from backend.users.models import Role

MISSING = str(uuid.uuid4())
NEW_USER = {
    "email": "new.person@hospital.test",
    "full_name": "New Person",
    "role": "clinician",
    "password": "a long enough passphrase",
}

# (method, path template, allowed roles, json body, expected success status, has a {id} to miss)
MATRIX = [
    ("GET", "/api/v1/users/me", {"clinician", "dermatologist", "admin"}, None, 200, False),
    ("GET", "/api/v1/users", {"admin"}, None, 200, False),
    ("POST", "/api/v1/users", {"admin"}, NEW_USER, 201, False),
    ("GET", "/api/v1/users/{id}", {"admin"}, None, 200, True),
    ("PATCH", "/api/v1/users/{id}", {"admin"}, {"full_name": "Renamed"}, 200, True),
    ("POST", "/api/v1/users/{id}/unlock", {"admin"}, None, 200, True),
    ("GET", "/api/v1/audit/events", {"admin"}, None, 200, False),
    ("GET", "/api/v1/audit/events.csv", {"admin"}, None, 200, False),
    ("GET", "/api/v1/audit/events.fhir", {"admin"}, None, 200, False),
    ("GET", "/api/v1/audit/verify", {"admin"}, None, 200, False),
    ("POST", "/api/v1/auth/logout", {"clinician", "dermatologist", "admin"}, None, 204, False),
    (
        "POST",
        "/api/v1/auth/totp/enrol",
        {"clinician", "dermatologist"},
        {"password": "correct horse battery staple"},
        200,
        False,
    ),
    (
        "POST",
        "/api/v1/auth/password",
        {"clinician", "dermatologist", "admin"},
        {"current_password": "correct horse battery staple", "new_password": "another long passphrase"},
        204,
        False,
    ),
]
PUBLIC = {
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/refresh"),
    ("POST", "/api/v1/auth/totp/confirm"),
    # Single sign-on (tests/backend/test_sso.py): the flow happens before anyone has a token.
    ("GET", "/api/v1/auth/oidc/config"),
    ("GET", "/api/v1/auth/oidc/login"),
    ("GET", "/api/v1/auth/oidc/callback"),
    ("POST", "/api/v1/auth/oidc/exchange"),
}


def _api_routes(app):  # type: ignore[no-untyped-def]
    """Every API operation, read from the OpenAPI schema: FastAPI 0.165 wraps included routers in
    `app.routes`, so walking those would find no route at all and this check would pass vacuously."""
    for path, operations in app.openapi()["paths"].items():
        for method in operations:
            if path.startswith("/api/") and method.upper() not in {"HEAD", "OPTIONS"}:
                yield method.upper(), path.replace("{user_id}", "{id}")


def test_every_route_is_in_a_matrix(app):
    import re

    from tests.backend.cases.test_routes_cases import CASE_MATRIX
    from tests.backend.clinical.test_routes_clinical import CLINICAL_MATRIX
    from tests.backend.lesions.test_lesion_routes import LESION_MATRIX

    def norm(path: str) -> str:
        return re.sub(r"\{[a-z_]+\}", "{id}", path.split("?")[0])

    rows = MATRIX + CLINICAL_MATRIX + CASE_MATRIX + LESION_MATRIX + [("POST", "/api/v1/cases")]
    covered = {(m, norm(p)) for m, p, *_ in rows}
    normalised = {(m, norm(p)) for m, p in _api_routes(app)}
    assert len(normalised) > 30  # the walk found the routes (it once found none and passed)
    assert normalised <= covered | PUBLIC, normalised - covered - PUBLIC


@pytest.mark.parametrize(("method", "path"), [(m, p) for m, p, *_ in MATRIX])
def test_anonymous_is_401(client, method, path):
    response = client.request(method, path.format(id=MISSING))
    assert response.status_code == 401
    assert response.json()["type"] == "not_authenticated"


@pytest.mark.parametrize("row", MATRIX, ids=[f"{m} {p}" for m, p, *_ in MATRIX])
def test_wrong_role_is_403_missing_is_404_valid_succeeds(client, make_user, row):
    method, path, allowed, body, success, has_id = row
    accounts = {role: make_user(role) for role in Role}
    target = make_user(Role.clinician, login=False)
    for role, account in accounts.items():
        if role.value not in allowed and not (role is Role.admin and "/totp/" in path):
            response = client.request(
                method, path.format(id=target.user.id), headers=account.headers, json=body
            )
            assert response.status_code == 403, (role, response.text)
            assert response.json()["type"] == "forbidden"
    actor = accounts[Role(min(allowed))]
    if has_id:
        missing = client.request(method, path.format(id=MISSING), headers=actor.headers, json=body)
        assert missing.status_code == 404 and missing.json()["type"] == "not_found"
    ok = client.request(method, path.format(id=target.user.id), headers=actor.headers, json=body)
    assert ok.status_code == success, ok.text
