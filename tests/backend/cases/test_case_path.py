"""The fast case path: one decode feeding the model, the batcher, SQLite's write lock, metrics, log ids."""

from __future__ import annotations

import io
import re
import sqlite3
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image
from sqlmodel import select

from backend.cases.models import AnalysisJob, AnalysisResult, CaseImage
from backend.images.intake import sanitize_with_pixels
from backend.inference.base import InferenceUnavailable
from backend.inference.batching import DynamicBatcher
from backend.inference.onnx import OnnxClassifier
from backend.inference.preprocess import load_image, to_model_input
from backend.users.models import Role
from tests.backend.cases.conftest import submit


def _jpeg(base: bytes, size: tuple[int, int]) -> bytes:
    with Image.open(io.BytesIO(base)) as image:
        out = io.BytesIO()
        image.convert("RGB").resize(size, Image.Resampling.BICUBIC).save(out, format="JPEG", quality=92)
        return out.getvalue()


def test_the_model_sees_the_preprocessing_contract_of_the_decoded_upload(
    app, client, consenting, lesion_jpeg
):
    """The inline analysis classifies `to_model_input` of intake's pixels (the contract the model was
    evaluated with), not a second decode of the stored JPEG; the two differ only by JPEG rounding."""
    seen: list[np.ndarray] = []
    service = app.state.services.analyzer
    real = service.classifier

    class Recording:
        def __init__(self, inner):  # type: ignore[no-untyped-def]
            self.inner = inner

        def predict_batch(self, pixels):  # type: ignore[no-untyped-def]
            seen.append(pixels.copy())
            return self.inner.predict_batch(pixels)

    recording = Recording(real())
    service.classifier = lambda: recording
    try:
        response = submit(client, consenting, [lesion_jpeg])
    finally:
        service.classifier = real
    assert response.status_code == 201 and response.json()["analysis"]["status"] == "done"
    (pixels,) = seen
    _, decoded = sanitize_with_pixels(lesion_jpeg, max_bytes=10**8, max_pixels=10**8)
    assert np.array_equal(pixels[0], to_model_input(decoded))

    image_id = response.json()["images"][0]["id"]
    stored = client.get(
        f"/api/v1/cases/{response.json()['id']}/images/{image_id}",
        headers=consenting["clinic"].clinician.headers,
    ).content
    from_stored = load_image(stored).astype(np.int16)
    assert np.abs(from_stored - pixels[0].astype(np.int16)).mean() < 1.5  # quality 95, 4:4:4 re-encode


def test_one_submission_commits_case_images_job_and_analysis_together(app, client, consenting, lesion_jpeg):
    response = submit(client, consenting, [lesion_jpeg, lesion_jpeg])
    assert response.status_code == 201
    case = response.json()
    assert case["analysis"]["status"] == "done" and case["analysis"]["attempts"] == 1
    assert [t["to_state"] for t in case["transitions"]][:2] == ["received", "analysed"]
    with app.state.db.session() as session:
        assert session.exec(select(AnalysisJob)).one().status == "done"
        assert len(session.exec(select(AnalysisResult)).all()) == 2
        keys = [i.blob_key for i in session.exec(select(CaseImage))]
    assert len(keys) == 2 and all(app.state.blobs.get(k) for k in keys)  # written before the commit


@pytest.mark.parametrize("concern", ["low", "high"])  # high: routed to the queue (more transitions)
def test_the_submission_answer_is_the_stored_case(client, consenting, lesion_jpeg, melanoma_jpeg, concern):
    """The answer to an inline-analysed submission is built from the rows in memory, not read back: it
    must be exactly what reading the stored case returns."""
    response = submit(
        client, consenting, [lesion_jpeg, melanoma_jpeg], concern=concern, notes="itches at night"
    )
    assert response.status_code == 201
    created = response.json()
    assert created["notes"] == "itches at night" and len(created["analysis"]["results"]) == 2
    read = client.get(f"/api/v1/cases/{created['id']}", headers=consenting["clinic"].clinician.headers)
    assert read.status_code == 200 and read.json() == created
    assert response.headers["ETag"] == read.headers["ETag"]


def test_an_outage_at_submission_stores_the_case_with_a_pending_job_and_logs_the_request_id(
    app, client, consenting, lesion_jpeg
):
    import json

    from backend.core.logging import configure_logging

    def down():  # type: ignore[no-untyped-def]
        raise InferenceUnavailable("inference server at 127.0.0.1:1 refused the connection")

    analyzer = app.state.services.analyzer
    real, analyzer.classifier = analyzer.classifier, down
    request_id = f"req-{uuid.uuid4().hex[:12]}"
    lines = io.StringIO()
    configure_logging(json=True, file=lines)
    try:
        response = client.post(
            "/api/v1/cases",
            headers={
                **consenting["clinic"].clinician.headers,
                "Idempotency-Key": uuid.uuid4().hex,
                "X-Request-ID": request_id,
            },
            data={"metadata": json.dumps({"patient_id": consenting["id"]})},
            files=[("images", ("a.jpg", lesion_jpeg, "image/jpeg"))],
        )
    finally:
        analyzer.classifier = real
        configure_logging(json=False)
    assert response.status_code == 201
    assert response.json()["analysis"]["status"] == "pending"
    events = [json.loads(line) for line in lines.getvalue().splitlines()]
    assert {e["event"] for e in events} >= {"analysis postponed", "request"}
    assert all(e["request_id"] == request_id for e in events)  # every line of the request carries its id


class _Counting:
    """A classifier that records the size of each call and can hold a call until released."""

    def __init__(self, inner) -> None:  # type: ignore[no-untyped-def]
        self.inner, self.calls = inner, []
        self.gate = threading.Event()

    @property
    def info(self):  # type: ignore[no-untyped-def]
        return self.inner.info

    def predict_batch(self, pixels):  # type: ignore[no-untyped-def]
        self.calls.append(len(pixels))
        if len(self.calls) == 1:
            self.gate.wait(60)  # the first call runs while the others queue up
        return self.inner.predict_batch(pixels)


def test_the_batcher_runs_waiting_requests_in_one_call_and_hands_each_its_own_rows(model_repository):
    from tests.backend.conftest import MODEL

    classifier = _Counting(OnnxClassifier(model_repository, MODEL))
    batcher = DynamicBatcher(max_batch=16, max_delay=0.002)
    rng = np.random.default_rng(0)
    inputs = [rng.integers(0, 255, (n, 224, 224, 3), dtype=np.uint8) for n in (1, 2, 1, 3, 1)]
    waiting = [batcher.submit(classifier, inputs[0])]
    while not classifier.calls:  # the first call has started and holds the model
        threading.Event().wait(0.01)
    waiting += [batcher.submit(classifier, x) for x in inputs[1:]]
    classifier.gate.set()
    results = [w() for w in waiting]
    assert classifier.calls == [1, 7]  # the four requests that queued meanwhile share one call
    for x, result in zip(inputs, results, strict=True):
        expected = classifier.inner.predict_batch(x)
        got = np.array([list(r.probabilities.values()) for r in result])
        want = np.array([list(e.probabilities.values()) for e in expected])
        assert np.allclose(got, want, atol=1e-5)


def test_the_batcher_gives_every_waiting_caller_the_error():
    class Broken:
        def predict_batch(self, pixels):  # type: ignore[no-untyped-def]
            raise InferenceUnavailable("down")

    batcher = DynamicBatcher()
    with pytest.raises(InferenceUnavailable):
        batcher.predict(Broken(), np.zeros((1, 224, 224, 3), np.uint8))
    with pytest.raises(InferenceUnavailable):  # and keeps serving
        batcher.predict(Broken(), np.zeros((1, 224, 224, 3), np.uint8))


def test_reads_and_writes_do_not_wait_for_a_submission_processing_images(
    app, client, consenting, lesion_jpeg, monkeypatch
):
    """Issue 10 item 15: no image work inside a transaction, and a read takes no write lock."""
    from backend.cases import service

    entered, release = threading.Event(), threading.Event()
    real_assess = service.assess

    def slow_assess(image):  # type: ignore[no-untyped-def]
        entered.set()
        release.wait(60)
        return real_assess(image)

    monkeypatch.setattr(service, "assess", slow_assess)
    headers = consenting["clinic"].clinician.headers
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(submit, client, consenting, [lesion_jpeg])
        assert entered.wait(60)
        try:
            assert client.get("/api/v1/users/me", headers=headers).status_code == 200
            other = client.post(
                "/api/v1/patients",
                headers=headers,
                json={
                    "full_name": "Second Patient",
                    "date_of_birth": "1980-02-02",
                    "medical_record_number": "MRN-2",
                },
            )
            assert other.status_code == 201, other.text
        finally:
            release.set()
        assert pending.result(timeout=120).status_code == 201


def test_a_write_lock_not_granted_in_time_answers_503_with_retry_after(
    app, client, consenting, lesion_jpeg, monkeypatch
):
    """Another process holding SQLite's write lock past the busy timeout: the submission is refused as
    "busy, retry" (503, Retry-After), not as an internal error, and nothing of it is stored."""
    from backend import db

    if not app.state.db.is_sqlite:
        pytest.skip("SQLite's busy timeout")
    monkeypatch.setattr(db, "BUSY_TIMEOUT_SECONDS", 0.2)
    app.state.db.engine.dispose()  # new connections take the short busy timeout
    other = sqlite3.connect(app.state.db.engine.url.database, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        response = submit(client, consenting, [lesion_jpeg])
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert response.status_code == 503, response.text
    assert response.json()["type"] == "service_unavailable" and response.headers["Retry-After"] == "2"
    with app.state.db.session() as session:
        assert session.exec(select(AnalysisJob)).first() is None
    assert submit(client, consenting, [lesion_jpeg]).status_code == 201


def test_parallel_large_submissions_all_succeed(app, client, consenting, lesion_jpeg):
    """Issue 10 item 15: 8 parallel submissions of 2 large photos each: no `database is locked`, no 500."""
    large = _jpeg(lesion_jpeg, (2400, 1800))
    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda _: submit(client, consenting, [large, large]), range(8)))
    assert [r.status_code for r in responses] == [201] * 8, [r.text[:200] for r in responses]
    assert all(r.json()["analysis"]["status"] == "done" for r in responses)
    with app.state.db.session() as session:
        assert len(session.exec(select(AnalysisResult)).all()) == 16


def test_a_request_declaring_more_pixels_than_the_decoding_budget_is_refused_before_decoding(
    app, client, consenting
):
    bomb = _flat_png(6300, 6300)
    response = submit(client, consenting, [bomb, bomb])  # 79 million pixels declared > 60 million
    assert response.status_code == 413 and response.json()["type"] == "too_large"
    assert "declare" in response.json()["detail"]


def test_the_checks_answer_before_the_images_and_the_decoding_budget_is_free_after_either(
    app, client, consenting
):
    """The images are decoded while the checks run, yet a refused look-up answers first, and the pixels
    reserved for a decode are given back whichever way the request ends."""
    corrupt = b"\xff\xd8\xff\xe0" + bytes(4000)  # a JPEG signature, then nothing decodable
    stranger = {**consenting, "id": str(uuid.uuid4())}
    assert submit(client, stranger, [corrupt]).status_code == 404
    refused = submit(client, consenting, [corrupt])
    assert refused.status_code == 415 and refused.json()["type"] == "not_an_image", refused.text
    assert app.state.cases.decode_budget.in_use == 0
    assert submit(client, consenting, [_jpeg(_flat_png(640, 480), (640, 480))]).status_code == 201
    assert app.state.cases.decode_budget.in_use == 0


def _flat_png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 180, 170)).save(out, format="PNG", optimize=True)
    return out.getvalue()


def test_metrics_need_the_scrape_token_or_an_admin(app, client, consenting, make_user, lesion_jpeg):
    from pydantic import SecretStr

    assert client.get("/metrics").status_code == 401
    clinician = consenting["clinic"].clinician
    assert client.get("/metrics", headers=clinician.headers).status_code == 403
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    case = submit(client, consenting, [lesion_jpeg])
    assert case.status_code == 201
    heatmap = case.json()["analysis"]["results"][0]["heatmap_url"]
    assert client.get(heatmap, headers=clinician.headers).status_code == 200  # drawn on first view
    admin = make_user(Role.admin)
    by_admin = client.get("/metrics", headers=admin.headers)
    assert by_admin.status_code == 200
    text = by_admin.text
    assert 'dermalink_http_requests_total{method="POST",route="/api/v1/cases",status="201"}' in text
    for stage in (
        "authenticate",
        "checks",
        "intake",
        "quality",
        "preprocess",
        "encrypt_store",
        "queue_wait",
        "inference",
        "heatmap",
        "triage",
        "insert",
        "group_commit",
        "commit",
    ):
        assert f'dermalink_case_stage_seconds_count{{stage="{stage}"}}' in text
    assert "dermalink_inference_batch_size_count" in text
    groups = re.search(r"^dermalink_commit_group_size_count (\S+)$", text, re.MULTILINE)
    assert groups and float(groups.group(1)) >= 1  # the submission's rows went through a group commit
    assert 'dermalink_analysis_jobs{status="done"} 1.0' in text
    assert "dermalink_analysis_oldest_due_job_age_seconds 0.0" in text
    assert 'dermalink_model_info{name="ham10000_mobilenetv2"' in text
    assert 'dermalink_errors_total{type="forbidden"}' in text
    app.state.settings.metrics_token = SecretStr("prometheus-scrape-token")
    scraped = client.get("/metrics", headers={"Authorization": "Bearer prometheus-scrape-token"})
    assert scraped.status_code == 200 and "dermalink_http_requests_total" in scraped.text
