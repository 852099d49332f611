"""Fixtures for the case workflow: a model, a clinic with a consenting patient, a dermatologist, uploads."""

from __future__ import annotations

import csv
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

# A submission waits for its analysis's first attempt (an event, not a sleep): the ceiling only matters
# when something is broken, so it is generous enough for a loaded 2-core CI machine.
ANALYSIS_WAIT_S = 120


@pytest.fixture
def settings(database_url, tmp_path, model_repository):  # type: ignore[no-untyped-def]
    return make_settings(
        database_url, tmp_path, model_repository=model_repository, analysis_wait_seconds=ANALYSIS_WAIT_S
    )


def ham10000_jpeg(shared_dir, image_id: str, dx: str) -> bytes:  # type: ignore[no-untyped-def]
    """A full-size HAM10000 image (CC BY-NC 4.0, see shared/data/ham10000/README.md), checked against the
    dataset's own diagnosis so a fixture's name cannot drift from what the image shows."""
    root = shared_dir / "data" / "ham10000"
    with open(root / "HAM10000_metadata.csv", newline="") as fh:
        (row,) = [r for r in csv.DictReader(fh) if r["image_id"] == image_id]
    assert row["dx"] == dx, f"{image_id} is {row['dx']} in HAM10000_metadata.csv, not {dx}"
    return (root / "full_size" / f"{image_id}.jpg").read_bytes()


# What the shipped model makes of them (model_repository/ham10000_mobilenetv2, triage.json thresholds
# malignant 0.088 and low confidence 0.64): tests/backend/cases/test_triage.py asserts these premises.
NEVUS, MELANOMA, KERATOSIS = "ISIC_0024306", "ISIC_0024310", "ISIC_0024324"


@pytest.fixture(scope="session")
def nevus_jpeg(shared_dir) -> bytes:  # type: ignore[no-untyped-def]
    """A melanocytic nevus (follow-up confirmed); the model calls it nv with high confidence."""
    return ham10000_jpeg(shared_dir, NEVUS, "nv")


@pytest.fixture(scope="session")
def melanoma_jpeg(shared_dir) -> bytes:  # type: ignore[no-untyped-def]
    """A histopathology-confirmed melanoma; the model calls it mel."""
    return ham10000_jpeg(shared_dir, MELANOMA, "mel")


@pytest.fixture(scope="session")
def keratosis_jpeg(shared_dir) -> bytes:  # type: ignore[no-untyped-def]
    """A benign keratosis (histopathology) on which the model is unsure (top probability about 0.34)."""
    return ham10000_jpeg(shared_dir, KERATOSIS, "bkl")


@pytest.fixture(scope="session")
def lesion_jpeg(nevus_jpeg) -> bytes:  # type: ignore[no-untyped-def]
    """Any real lesion photo, for tests where the diagnosis does not matter: the nevus."""
    return nevus_jpeg


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


def hold_jobs(app) -> None:  # type: ignore[no-untyped-def]
    """Nobody runs analysis jobs from now on but the test itself (``analyzer.run_due()``): the embedded
    runner's thread is stopped (patching ``submit`` alone leaves its 2 s poll racing the test) and a
    submission answers at once instead of waiting for an analysis that will not come."""
    app.state.dispatcher.stop()
    app.state.dispatcher.inline = False  # no analysis inside the submission either (the default setup's)
    app.state.settings.analysis_wait_seconds = 0


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
