"""Consent documents and per-scope consent: recording, withdrawal, re-consent, enforcement."""

from __future__ import annotations

import uuid

import pytest

from backend.consent import service as consent
from backend.consent.models import Scope
from tests.backend.clinical.conftest import CONSENT_TEXT, signature_png
from tests.backend.conftest import audit_rows


def _record(client, patient, document, scopes, **extra):  # type: ignore[no-untyped-def]
    body = {
        "document_id": document["id"],
        "scopes": scopes,
        "method": "verbal",
        "witness_name": "Nurse Joy",
        **extra,
    }
    return client.post(
        f"/api/v1/patients/{patient['id']}/consents", headers=patient["clinic"].clinician.headers, json=body
    )


def _active(response) -> dict[str, bool]:  # type: ignore[no-untyped-def]
    return {s["scope"]: s["active"] for s in response.json()["scopes"]}


def test_published_documents_are_immutable(client, document, make_clinic):
    admin = make_clinic.admin
    assert len(document["content_hash"]) == 64
    again = client.post(
        "/api/v1/consent-documents",
        headers=admin.headers,
        json={
            "version": "2026.1",
            "language": "en",
            "title": "Changed",
            "text": CONSENT_TEXT,
            "scopes": ["research"],
        },
    )
    assert again.status_code == 409
    assert (
        client.patch(
            f"/api/v1/consent-documents/{document['id']}", headers=admin.headers, json={}
        ).status_code
        == 405
    )
    assert (
        client.get(f"/api/v1/consent-documents/{document['id']}", headers=admin.headers).json()["title"]
        == "DermaLink consent"
    )


def test_verbal_consent_needs_a_witness_and_is_recorded_once(app, client, patient, document):
    assert _record(client, patient, document, ["ai_analysis"], witness_name=None).status_code == 422
    first = _record(client, patient, document, ["ai_analysis", "specialist_sharing"])
    assert first.status_code == 201
    assert _active(first) == {"ai_analysis": True, "specialist_sharing": True, "research": False}
    twice = _record(client, patient, document, ["ai_analysis"])
    assert twice.status_code == 409 and "already recorded" in twice.json()["detail"]
    assert len(audit_rows(app, action="consent.grant")) == 2


def test_signed_consent_stores_the_signature_encrypted(app, client, patient, document):
    response = _record(
        client,
        patient,
        document,
        ["research"],
        method="signed",
        witness_name=None,
        signature_png_base64=signature_png(),
    )
    assert response.status_code == 201, response.text
    (event,) = [e for e in response.json()["history"] if e["scope"] == "research"]
    assert event["has_signature"] is True
    blobs = app.state.blobs
    (key,) = list(blobs.iter_keys(f"patients/{patient['id']}/signatures/"))
    raw = blobs.get(key)
    assert not raw.startswith(b"\x89PNG")  # ciphertext, not the image
    with app.state.db.session() as session:
        plain = app.state.vault.decrypt(session, uuid.UUID(patient["id"]), f"blob:{key}", raw)
    assert plain.startswith(b"\x89PNG")
    no_image = _record(client, patient, document, ["ai_analysis"], method="signed", witness_name=None)
    assert no_image.status_code == 422
    not_an_image = _record(
        client,
        patient,
        document,
        ["ai_analysis"],
        method="signed",
        witness_name=None,
        signature_png_base64="aGVsbG8gd29ybGQ=",
    )
    assert not_an_image.status_code == 422 and "image" in not_an_image.json()["detail"]


def test_withdrawal_keeps_history_and_refuses_what_was_never_given(client, patient, document):
    _record(client, patient, document, ["ai_analysis"])
    never = client.post(
        f"/api/v1/patients/{patient['id']}/consents/withdraw",
        headers=patient["clinic"].clinician.headers,
        json={"scopes": ["research"]},
    )
    assert never.status_code == 409 and "research" in never.json()["detail"]
    withdrawn = client.post(
        f"/api/v1/patients/{patient['id']}/consents/withdraw",
        headers=patient["clinic"].clinician.headers,
        json={"scopes": ["ai_analysis"], "reason": "patient changed their mind"},
    )
    assert withdrawn.status_code == 200 and _active(withdrawn)["ai_analysis"] is False
    assert [e["kind"] for e in withdrawn.json()["history"]] == ["grant", "withdraw"]


def test_unknown_and_withdrawn_versions_are_refused(client, patient, document, make_clinic):
    unknown = _record(client, patient, {"id": str(uuid.uuid4())}, ["ai_analysis"])
    assert unknown.status_code == 404
    admin = make_clinic.admin
    assert (
        client.post(f"/api/v1/consent-documents/{document['id']}/withdraw", headers=admin.headers).status_code
        == 200
    )
    withdrawn = _record(client, patient, document, ["ai_analysis"])
    assert withdrawn.status_code == 422 and "withdrawn" in withdrawn.json()["detail"]


def test_a_new_version_can_require_reconsent(client, patient, document, make_clinic):
    _record(client, patient, document, ["ai_analysis"])
    admin = make_clinic.admin
    v2 = client.post(
        "/api/v1/consent-documents",
        headers=admin.headers,
        json={
            "version": "2026.2",
            "language": "en",
            "title": "DermaLink consent v2",
            "text": CONSENT_TEXT + " Updated.",
            "scopes": ["ai_analysis"],
            "requires_reconsent": True,
        },
    ).json()
    status = client.get(
        f"/api/v1/patients/{patient['id']}/consents", headers=patient["clinic"].clinician.headers
    )
    (ai,) = [s for s in status.json()["scopes"] if s["scope"] == "ai_analysis"]
    assert ai["active"] is False and ai["needs_reconsent"] is True
    assert (
        _record(client, patient, document, ["ai_analysis"]).status_code == 422
    )  # the old version is superseded
    assert _active(_record(client, patient, v2, ["ai_analysis"]))["ai_analysis"] is True


@pytest.mark.parametrize("scope", list(Scope))
def test_enforcement_names_the_missing_scope(app, client, patient, document, scope):
    pid = uuid.UUID(patient["id"])
    with app.state.db.session() as session, pytest.raises(consent.ConsentRequired, match=scope.value):
        consent.require(session, pid, scope)
    _record(client, patient, document, [scope.value])
    with app.state.db.session() as session:
        assert consent.require(session, pid, scope).document.version == "2026.1"
    client.post(
        f"/api/v1/patients/{patient['id']}/consents/withdraw",
        headers=patient["clinic"].clinician.headers,
        json={"scopes": [scope.value]},
    )
    with app.state.db.session() as session, pytest.raises(consent.ConsentRequired, match=scope.value):
        consent.require(session, pid, scope)


def test_consenting_agrees_with_the_history(app, client, patient, document, make_clinic):
    """The one-query answer of a submission (`consenting`) and the rule over the whole history (`status`)
    agree at every step: nothing, grants, a withdrawal, a newer version requiring re-consent, re-consent."""
    pid = uuid.UUID(patient["id"])

    def check() -> dict[Scope, bool]:
        with app.state.db.session() as session:
            fast = consent.consenting(session, pid, *Scope)
            assert fast == {s: active is not None for s, (active, _) in consent.status(session, pid).items()}
            return fast

    assert check() == dict.fromkeys(Scope, False)
    _record(client, patient, document, ["ai_analysis", "specialist_sharing"])
    assert check() == {Scope.ai_analysis: True, Scope.specialist_sharing: True, Scope.research: False}
    client.post(
        f"/api/v1/patients/{patient['id']}/consents/withdraw",
        headers=patient["clinic"].clinician.headers,
        json={"scopes": ["specialist_sharing"]},
    )
    assert check() == {Scope.ai_analysis: True, Scope.specialist_sharing: False, Scope.research: False}
    v2 = client.post(
        "/api/v1/consent-documents",
        headers=make_clinic.admin.headers,
        json={
            "version": "2026.2",
            "language": "en",
            "title": "DermaLink consent v2",
            "text": CONSENT_TEXT + " Updated.",
            "scopes": ["ai_analysis", "research"],
            "requires_reconsent": True,
        },
    ).json()
    assert check() == dict.fromkeys(Scope, False)  # ai_analysis now needs re-consent
    with app.state.db.session() as session, pytest.raises(consent.ConsentRequired, match="re-consent"):
        consent.require_consenting(session, pid, Scope.ai_analysis)
    _record(client, patient, v2, ["ai_analysis", "research"])
    assert check() == {Scope.ai_analysis: True, Scope.specialist_sharing: False, Scope.research: True}
    with app.state.db.session() as session:
        assert consent.require_consenting(session, pid, Scope.ai_analysis, Scope.specialist_sharing) == {
            Scope.ai_analysis: True,
            Scope.specialist_sharing: False,
        }
