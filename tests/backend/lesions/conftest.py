"""Lesion tracking reuses the case workflow's fixtures (a consenting patient, real images, submit)."""

from __future__ import annotations

import io
import random

import pytest
from PIL import Image

from backend.lesions import change, evaluate
from tests.backend.cases.conftest import (  # noqa: F401  (fixtures reused here)
    CONSENT_TEXT,
    IDENTITY,
    consenting,
    dermatologist,
    document,
    lesion_jpeg,
    make_clinic,
    nevus_jpeg,
    patient,
)
from tests.backend.conftest import make_settings


@pytest.fixture
def settings(database_url, tmp_path, model_repository):  # type: ignore[no-untyped-def]
    # Only the rules a test is about may fire: the model's own rules are switched off here.
    return make_settings(
        database_url,
        tmp_path,
        model_repository=model_repository,
        analysis_wait_seconds=30,
        triage_malignant_threshold=1.01,
        triage_low_confidence_threshold=0.0,
    )


def jpeg(rgb) -> bytes:  # type: ignore[no-untyped-def]
    out = io.BytesIO()
    evaluate._to_image(rgb).save(out, format="JPEG", quality=95)
    return out.getvalue()


@pytest.fixture(scope="session")
def followups(lesion_jpeg):  # type: ignore[no-untyped-def]
    """Synthetic follow-ups of the real lesion photo: the camera moved, or the lesion also grew by 44%."""
    base = change.to_work_image(Image.open(io.BytesIO(lesion_jpeg)))
    rng = random.Random(7)
    return {
        "moved": jpeg(evaluate.camera_move(base, rng)),
        "grown": jpeg(evaluate.camera_move(evaluate.grow_lesion(base), rng)),
        "flat": jpeg(base * 0 + 0.6),
    }
