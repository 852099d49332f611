"""Every upload of the hostile corpus through the API: the documented answer, nothing stored for a
refusal, and for an accepted upload nothing of it in clear at rest (no uploaded bytes, no metadata)."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import func
from sqlmodel import select

from backend.cases.models import Case
from tests.backend.cases.conftest import submit
from tests.backend.images.corpus import CORPUS, GPS_LATITUDE, SENTINEL, Upload


def _files_at_rest(data_dir: Path) -> bytes:
    """Everything the platform wrote under its data directory (blobs, keys, a SQLite file if any)."""
    return b"".join(p.read_bytes() for p in sorted(data_dir.rglob("*")) if p.is_file())


def _windows(data: bytes, size: int = 48) -> list[bytes]:
    """A few slices from across ``data``: any one found in clear means the upload is stored unencrypted."""
    if len(data) <= size:
        return [data]
    step = max(size, (len(data) - size) // 6)
    return [data[i : i + size] for i in range(0, len(data) - size, step)]


METADATA_MARKERS = [
    SENTINEL.encode(),
    b"Exif\x00\x00",
    struct.pack(">II", int(GPS_LATITUDE[0]), 1),  # a GPS rational as a TIFF big-endian IFD stores it
    struct.pack("<II", int(GPS_LATITUDE[0]), 1),
]


@pytest.mark.parametrize("upload", CORPUS, ids=[u.name for u in CORPUS])
def test_hostile_corpus_through_the_api(app, client, consenting, settings, upload: Upload):
    data = upload.build()
    response = submit(client, consenting, [data])
    assert response.status_code == upload.status, (upload.name, response.text)
    at_rest = _files_at_rest(settings.data_dir)
    if upload.type is not None:
        assert response.json()["type"] == upload.type, (upload.name, response.text)
        with app.state.db.session() as session:
            assert session.exec(select(func.count()).select_from(Case)).one() == 0
        assert list(app.state.blobs.iter_keys(f"patients/{consenting['id']}/images")) == []
        return

    case = response.json()
    headers = consenting["clinic"].clinician.headers
    (image,) = case["images"]
    served = client.get(f"/api/v1/cases/{case['id']}/images/{image['id']}", headers=headers)
    assert served.status_code == 200 and served.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(served.content)) as decoded:
        assert decoded.format == "JPEG" and len(decoded.getexif()) == 0
    for marker in METADATA_MARKERS:
        assert marker not in served.content, (upload.name, marker)
        assert marker not in at_rest, (upload.name, marker)
    for window in _windows(data) + _windows(served.content):
        assert window not in at_rest, upload.name
