"""Fixtures for the case workflow: a model, a clinic with a consenting patient, a dermatologist, uploads."""

from __future__ import annotations

import io
import json
import uuid

import pytest
from PIL import Image

from backend.users.models import Role
from tests.backend.clinical.conftest import (  # noqa: F401  (fixtures reused here)
    CONSENT_TEXT,
    IDENTITY,
    document,
    make_clinic,
    patient,
)
from tests.backend.conftest import make_settings


@pytest.fixture
def settings(database_url, tmp_path, model_repository):  # type: ignore[no-untyped-def]
    return make_settings(database_url, tmp_path, model_repository=model_repository, analysis_wait_seconds=10)


@pytest.fixture(scope="session")
def lesion_jpeg(shared_dir) -> bytes:
    """A real full-size HAM10000 melanoma image (CC BY-NC 4.0, see shared/data/ham10000/README.md)."""
    return min((shared_dir / "data" / "ham10000" / "full_size").glob("*.jpg")).read_bytes()


@pytest.fixture
def consenting(client, patient, document):  # type: ignore[no-untyped-def]
    """The patient consents to analysis and sharing (not research)."""
    response = client.post(
        f"/api/v1/patients/{patient['id']}/consents",
        headers=patient["clinic"].clinician.headers,
        json={
            "document_id": document["id"],
            "scopes": ["ai_analysis", "specialist_sharing"],
            "method": "verbal",
            "witness_name": "Nurse Joy",
        },
    )
    assert response.status_code == 201
    return patient


@pytest.fixture
def dermatologist(make_user):  # type: ignore[no-untyped-def]
    return make_user(Role.dermatologist)


def submit(client, patient, images: list[bytes], *, key: str | None = None, **metadata):  # type: ignore[no-untyped-def]
    body = {"patient_id": patient["id"], "age": 54, "sex": "female", "site": "back", **metadata}
    files = [("images", (f"lesion{i}.jpg", data, "image/jpeg")) for i, data in enumerate(images)]
    return client.post(
        "/api/v1/cases",
        headers={**patient["clinic"].clinician.headers, "Idempotency-Key": key or uuid.uuid4().hex},
        data={"metadata": json.dumps(body)},
        files=files,
    )


def jpeg_with_gps(base: bytes) -> bytes:
    with Image.open(io.BytesIO(base)) as image:
        exif = Image.Exif()
        exif[0x010F] = "PhoneMaker"  # Make
        gps = exif.get_ifd(0x8825)
        gps[1], gps[2], gps[3], gps[4] = "N", (51.0, 30.0, 0.0), "W", (0.0, 7.0, 0.0)
        out = io.BytesIO()
        image.save(out, format="JPEG", exif=exif)
        return out.getvalue()
