"""Fixtures for the clinical-data tests: every test here runs on local files and on S3 (SeaweedFS)."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from PIL import Image

from backend.users.models import Role
from tests.backend.conftest import Account, make_settings

CONSENT_TEXT = "I agree that DermaLink may process images of my skin lesion as described in this document."


@pytest.fixture(params=["local", "s3"])
def blob_store_url(request: pytest.FixtureRequest) -> str:
    if request.param == "local":
        return ""
    return request.getfixturevalue("seaweedfs_s3_url")


@pytest.fixture
def settings(database_url, tmp_path, blob_store_url, model_repository):  # type: ignore[no-untyped-def]
    return make_settings(
        database_url, tmp_path, blob_store_url=blob_store_url, model_repository=model_repository
    )


@dataclass
class Clinic:
    id: str
    clinician: Account


@pytest.fixture
def make_clinic(app, make_user) -> Callable[[str], Clinic]:  # type: ignore[no-untyped-def]
    """A factory: a clinic and a logged-in clinician in it, made through the services (the clinic and
    user endpoints have their own tests; here they are only set-up)."""
    from backend.core.actor import SYSTEM
    from backend.users.service import create_clinic

    admin = make_user(Role.admin)

    def factory(name: str) -> Clinic:
        with app.state.db.session() as session:
            clinic = create_clinic(session, SYSTEM, name)
            session.commit()
            clinic_id = clinic.id
        return Clinic(id=str(clinic_id), clinician=make_user(Role.clinician, clinic_id=clinic_id))

    factory.admin = admin  # type: ignore[attr-defined]
    return factory


IDENTITY = {
    "full_name": "Ada Lovelace",
    "date_of_birth": "1815-12-10",
    "medical_record_number": "MRN-0001",
    "contact": "+44 20 7946 0000",
}


@pytest.fixture
def patient(client, make_clinic):  # type: ignore[no-untyped-def]
    clinic = make_clinic("North Clinic")
    response = client.post("/api/v1/patients", headers=clinic.clinician.headers, json=IDENTITY)
    assert response.status_code == 201, response.text
    return {"id": response.json()["id"], "clinic": clinic, "admin": make_clinic.admin}


@pytest.fixture
def document(client, make_clinic):  # type: ignore[no-untyped-def]
    admin = make_clinic.admin
    body = {
        "version": "2026.1",
        "language": "en",
        "title": "DermaLink consent",
        "text": CONSENT_TEXT,
        "scopes": ["ai_analysis", "specialist_sharing", "research"],
    }
    response = client.post("/api/v1/consent-documents", headers=admin.headers, json=body)
    assert response.status_code == 201, response.text
    return response.json()


def signature_png() -> str:
    image = Image.new("RGB", (120, 40), "white")
    for x in range(10, 110):
        image.putpixel((x, 20 + (x % 7)), (0, 0, 0))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode()


from tests.backend.storage.seaweedfs import seaweedfs, seaweedfs_s3_url  # noqa: F401
