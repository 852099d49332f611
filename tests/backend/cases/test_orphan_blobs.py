"""Blobs written before a commit that never happened are swept after the grace period, and only those."""

from __future__ import annotations

import os
import time
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from backend.cases.schemas import CaseCreate
from backend.cases.service import Upload
from backend.core.actor import Actor, AuditContext
from backend.core.clock import utcnow
from backend.group_commit import GroupCommitter
from backend.orphans import sweep_orphans
from backend.users.models import User
from tests.backend.cases.conftest import submit
from tests.backend.conftest import audit_rows, make_settings
from tests.backend.storage.seaweedfs import s3_blob_url, seaweedfs  # noqa: F401


@pytest.fixture(params=["local", "s3"])
def settings(request, database_url, tmp_path, model_repository):  # type: ignore[no-untyped-def]
    url = (
        "" if request.param == "local" else request.getfixturevalue("s3_blob_url")
    )  # a fresh prefix: only this test's blobs
    return make_settings(
        database_url,
        tmp_path,
        model_repository=model_repository,
        blob_store_url=url,
        analysis_wait_seconds=10,
    )


def _no_database() -> Session:
    raise OperationalError("BEGIN", {}, Exception("the database went away"))


def _crashed_submission(app, patient, image: bytes) -> set[str]:  # type: ignore[no-untyped-def]
    """Run the real intake, but the commit never happens (the database goes away, as in a power cut
    between the blob write and the commit): the blob is stored, no row is (the service writes blobs
    before the commit that refers to them)."""
    before = set(app.state.blobs.iter_keys(f"patients/{patient['id']}"))
    cases = app.state.cases
    committer, cases.committer = cases.committer, GroupCommitter(_no_database, cases.committer.order)
    try:
        with app.state.db.session() as session:
            user = session.get(User, patient["clinic"].clinician.user.id)
            actor = Actor(user=user, ctx=AuditContext(user.id, user.role))
            body = CaseCreate(patient_id=uuid.UUID(patient["id"]), age=40, sex="male", site="hand")
            with pytest.raises(OperationalError):
                cases.submit(session, actor, body, [Upload("a.jpg", image)], uuid.uuid4().hex)
    finally:
        cases.committer = committer
    return set(app.state.blobs.iter_keys(f"patients/{patient['id']}")) - before


def test_orphans_are_swept_after_the_grace_period_and_referenced_blobs_never(
    app, client, consenting, lesion_jpeg
):
    case = submit(client, consenting, [lesion_jpeg]).json()
    with app.state.db.engine.connect() as conn:
        referenced = conn.execute(text("SELECT blob_key FROM case_image")).scalar_one()
    orphans = _crashed_submission(app, consenting, lesion_jpeg)
    assert len(orphans) == 1 and referenced not in orphans
    with app.state.db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM clinical_case")).scalar_one() == 1

    grace = timedelta(hours=24)
    soon = sweep_orphans(app.state.blobs, app.state.db.session, grace=grace)  # in flight, maybe: spared
    assert soon.deleted == [] and soon.young == 1
    later = sweep_orphans(
        app.state.blobs, app.state.db.session, grace=grace, now=utcnow() + timedelta(hours=25)
    )
    assert later.deleted == sorted(orphans) and later.young == 0
    assert app.state.blobs.exists(referenced) and not app.state.blobs.exists(next(iter(orphans)))
    image = client.get(
        f"/api/v1/cases/{case['id']}/images/{case['images'][0]['id']}",
        headers=consenting["clinic"].clinician.headers,
    )
    assert image.status_code == 200 and image.content[:2] == b"\xff\xd8"
    assert [e.detail for e in audit_rows(app, action="storage.sweep_orphans")]


def test_cli_sweeps_a_day_old_orphan_file(app, client, consenting, lesion_jpeg, settings, monkeypatch):
    if settings.blob_store_url:
        pytest.skip("file times can only be set on the local store (S3 is covered above)")
    from typer.testing import CliRunner

    from backend.cli import _register_all
    from backend.cli import app as cli
    from backend.config import get_settings

    submit(client, consenting, [lesion_jpeg])
    old = _crashed_submission(app, consenting, lesion_jpeg)
    young = _crashed_submission(app, consenting, lesion_jpeg)
    a_day_ago = time.time() - 25 * 3600
    for key in old:
        os.utime(app.state.blobs.root / key, (a_day_ago, a_day_ago))
    monkeypatch.setattr("backend.commands._context", lambda: (settings, app.state.keyring, app.state.db))
    get_settings.cache_clear()
    _register_all()
    result = CliRunner().invoke(cli, ["admin", "sweep-blobs"])
    # scanned: the submitted image (referenced; its heatmap is drawn on first view), the two orphans
    assert result.exit_code == 0 and result.output.startswith("1 orphan blob(s) deleted of 3"), result.output
    assert "1 unreferenced but younger than 24 h kept" in result.output
    remaining = set(app.state.blobs.iter_keys(f"patients/{consenting['id']}"))
    assert young <= remaining and not (old & remaining) and len(remaining) == 2
