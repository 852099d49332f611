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
