"""Every paged endpoint walked to the end: no row skipped or repeated, the order of the unpaged list, and
the last page without a cursor. Cursors that decode but do not fit the endpoint answer 400, never 500."""

from __future__ import annotations

import pytest

from backend.core.schemas import encode_cursor
from backend.users.models import Role
from tests.backend.cases.conftest import (  # noqa: F401  (fixtures)
    consenting,
    document,
    make_clinic,
    nevus_jpeg,
    patient,
    submit,
)


def walk(client, path, headers, limit, **params):  # type: ignore[no-untyped-def]
    """Follow next_cursor from the first page to the last; returns the pages' items."""
    pages, cursor = [], None
    while True:
        query = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        response = client.get(path, headers=headers, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(body["items"]) == limit  # only a full page may have a next one
        assert len(pages) < 1000, "the cursor never ends"


def assert_walks(client, path, headers, key, limit, expected_count, **params):  # type: ignore[no-untyped-def]
    everything = client.get(path, headers=headers, params={**params, "limit": 100}).json()
    assert everything["next_cursor"] is None
    ids = [i[key] for i in everything["items"]]
    assert len(ids) == expected_count
    pages = walk(client, path, headers, limit, **params)
    walked = [i[key] for page in pages for i in page]
    assert walked == ids  # same rows, same order: none skipped, none repeated
    assert len(walked) == len(set(walked))
    assert [len(p) for p in pages] == [limit] * (expected_count // limit) + (
        [expected_count % limit] if expected_count % limit else []
    )


def test_users_are_walked_to_the_end(client, make_user):
    admin = make_user(Role.admin)
    for role in (Role.clinician, Role.dermatologist) * 3:
        make_user(role, login=False)
    assert_walks(client, "/api/v1/users", admin.headers, "email", 3, 7)
    assert_walks(client, "/api/v1/users", admin.headers, "email", 7, 7)  # exactly one full page


def test_audit_events_are_walked_to_the_end(client, make_user):
    admin = make_user(Role.admin)
    for _ in range(4):
        make_user(Role.clinician, login=False)
    # the walk's own searches are audited too, as audit.search: outside the filter
    everything = client.get(
        "/api/v1/audit/events", headers=admin.headers, params={"limit": 500, "action": "user."}
    )
    count = len(everything.json()["items"])
    assert count == 5  # the admin and four clinicians
    assert_walks(client, "/api/v1/audit/events", admin.headers, "seq", 4, count, action="user.")


def test_cases_and_the_queue_are_walked_to_the_end(client, consenting, make_user, nevus_jpeg):  # noqa: F811
    dermatologist = make_user(Role.dermatologist)
    headers = consenting["clinic"].clinician.headers
    for i in range(5):  # urgent and review cases interleaved in time
        response = submit(
            client, consenting, [nevus_jpeg], **({"concern": "high"} if i % 2 else {"wants_specialist": True})
        )
        assert response.status_code == 201, response.text
    assert_walks(client, "/api/v1/cases", headers, "id", 2, 5)
    assert_walks(client, "/api/v1/queue", dermatologist.headers, "case_id", 2, 5)
    queue = client.get("/api/v1/queue", headers=dermatologist.headers).json()["items"]
    assert [i["triage_level"] for i in queue] == ["urgent", "urgent", "review", "review", "review"]


WRONG_CURSORS = {
    "empty list": encode_cursor([]),
    "too many values": encode_cursor(["a", "b", "c", "d", "e"]),
    "wrong types": encode_cursor([{"x": 1}, [2], None]),
    "a dict": encode_cursor({"seq": 1}),  # type: ignore[arg-type]
    "not base64 json": "bm90IGpzb24",
}


@pytest.mark.parametrize("path", ["/api/v1/users", "/api/v1/audit/events", "/api/v1/cases", "/api/v1/queue"])
def test_well_formed_but_wrong_cursors_answer_400(client, make_user, path):
    role = {"/api/v1/cases": Role.clinician, "/api/v1/queue": Role.dermatologist}.get(path, Role.admin)
    account = make_user(role)
    for name, cursor in WRONG_CURSORS.items():
        response = client.get(path, headers=account.headers, params={"cursor": cursor})
        assert response.status_code == 400, (name, response.text)
        assert response.json() == {
            "type": "bad_request",
            "detail": "cursor is not valid; use next_cursor from a previous page",
        }, name
