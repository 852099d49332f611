"""Class-activation heatmaps on the case result: the analysis (inline and by a worker) keeps each image's
top-class map; the first view draws the overlay and stores it encrypted next to the images; later views
read it; swept and erased like the images."""

from __future__ import annotations

import io
import json
import uuid
from datetime import timedelta

import numpy as np
from PIL import Image
from sqlalchemy import text

from backend.core.clock import utcnow
from backend.inference.cam import LABEL
from backend.orphans import sweep_orphans
from backend.users.models import Role
from tests.backend.cases.conftest import hold_jobs, submit
from tests.backend.conftest import audit_rows


def _url(case: dict, i: int = 0) -> str:
    return f"/api/v1/cases/{case['id']}/images/{case['images'][i]['id']}/heatmap"


def _heatmap_keys(app) -> list[str]:  # type: ignore[no-untyped-def]
    with app.state.db.engine.connect() as conn:
        return [k for (k,) in conn.execute(text("SELECT heatmap_blob_key FROM analysis_result")) if k]


def _class_maps(app) -> list:  # type: ignore[no-untyped-def]
    with app.state.db.engine.connect() as conn:
        return [m for (m,) in conn.execute(text("SELECT class_map FROM analysis_result"))]


def test_inline_analysis_keeps_each_images_map_and_the_first_view_stores_an_encrypted_heatmap(
    app, client, consenting, nevus_jpeg, melanoma_jpeg
):
    case = submit(client, consenting, [nevus_jpeg, melanoma_jpeg]).json()
    analysis = case["analysis"]
    assert analysis["status"] == "done" and analysis["heatmap_label"] == LABEL
    assert LABEL == "Where the model looked, not a diagnosis"
    by_image = {r["image_id"]: r for r in analysis["results"]}
    for i, image in enumerate(case["images"]):
        assert by_image[image["id"]]["heatmap_url"] == _url(case, i)
    maps = [np.asarray(m if isinstance(m, list) else json.loads(m)) for m in _class_maps(app)]
    assert [m.shape for m in maps] == [(7, 7), (7, 7)] and all(m.std() > 0 for m in maps)
    assert _heatmap_keys(app) == []  # nothing drawn until somebody looks
    headers = consenting["clinic"].clinician.headers
    first = client.get(_url(case, 1), headers=headers)
    assert first.status_code == 200 and first.headers["content-type"] == "image/png"
    assert first.headers["cache-control"] == "no-store"
    png = Image.open(io.BytesIO(first.content))
    assert png.format == "PNG" and png.size == (224, 224)  # drawn on the model's input, not full size
    assert np.asarray(png.convert("RGB")).std() > 10
    (key,) = _heatmap_keys(app)  # kept, next to the images, sealed: no PNG in the store
    assert key.startswith(f"patients/{consenting['id']}/images/{case['id']}-1-") and key.endswith(".png.enc")
    stored = app.state.blobs.get(key)
    assert not stored.startswith(b"\x89PNG") and b"IHDR" not in stored
    again = client.get(_url(case, 1), headers=headers)  # read back, not drawn again
    assert again.status_code == 200 and again.content == first.content and _heatmap_keys(app) == [key]
    viewed = audit_rows(app, action="case.heatmap_view")
    assert [str(v.resource_id) for v in viewed] == [case["images"][1]["id"]] * 2


def test_worker_analysis_keeps_maps_too(app, client, consenting, lesion_jpeg):
    hold_jobs(app)
    case = submit(client, consenting, [lesion_jpeg]).json()
    assert case["analysis"]["status"] == "pending" and _class_maps(app) == []
    clinician = consenting["clinic"].clinician
    assert client.get(_url(case), headers=clinician.headers).status_code == 404  # not analysed yet
    (job_id,) = app.state.services.analyzer.run_due()
    assert app.state.services.analyzer.status(job_id) == "done"
    case = client.get(f"/api/v1/cases/{case['id']}", headers=clinician.headers).json()
    assert case["analysis"]["results"][0]["heatmap_url"] == _url(case)
    response = client.get(_url(case), headers=clinician.headers)
    assert response.status_code == 200 and response.content[:4] == b"\x89PNG"
    assert len(_heatmap_keys(app)) == 1


def test_heatmaps_are_erased_with_the_patient_and_never_swept_while_referenced(
    app, client, consenting, lesion_jpeg, make_user
):
    case = submit(client, consenting, [lesion_jpeg]).json()
    assert client.get(_url(case), headers=consenting["clinic"].clinician.headers).status_code == 200
    (key,) = _heatmap_keys(app)
    later = utcnow() + timedelta(hours=25)
    swept = sweep_orphans(app.state.blobs, app.state.db.session, grace=timedelta(hours=24), now=later)
    assert swept.deleted == [] and app.state.blobs.exists(key)
    erased = client.post(
        f"/api/v1/patients/{consenting['id']}/erase",
        headers=make_user(Role.admin).headers,
        json={"reason": "Patient asked for erasure in writing (ticket 12)", "basis": "patient_request"},
    )
    assert erased.status_code == 200
    assert not app.state.blobs.exists(key)
    gone = client.get(_url(case), headers=consenting["clinic"].clinician.headers)
    assert gone.status_code == 410 and "patients/" not in gone.text


def test_an_unreferenced_heatmap_is_an_orphan(app, client, consenting, lesion_jpeg):
    submit(client, consenting, [lesion_jpeg])
    stray = f"patients/{consenting['id']}/images/{uuid.uuid4()}-0-{uuid.uuid4().hex}.heatmap.png.enc"
    app.state.blobs.put(stray, b"sealed bytes of a heatmap whose commit never happened")
    later = utcnow() + timedelta(hours=25)
    swept = sweep_orphans(app.state.blobs, app.state.db.session, grace=timedelta(hours=24), now=later)
    assert swept.deleted == [stray]
