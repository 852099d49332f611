"""The lesions migration turns every existing case into its own lesion (and undoes cleanly)."""

from __future__ import annotations

import uuid

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlmodel import select

from backend import migrate
from backend.cases.models import Case
from backend.lesions.models import Lesion
from tests.backend.cases.conftest import submit
from tests.conftest import DATABASES, migrated_database


@pytest.fixture(params=DATABASES)
def database_url(request, tmp_path):  # type: ignore[no-untyped-def]
    """A database of this test's own: it is migrated down and up again."""
    yield from migrated_database(request.param, tmp_path / "migration.db")


def test_each_existing_case_becomes_its_own_lesion(app, client, consenting, lesion_jpeg, database_url):
    first = submit(client, consenting, [lesion_jpeg], site="back")
    second = submit(client, consenting, [lesion_jpeg], site="face")
    assert first.status_code == second.status_code == 201
    app.state.db.dispose()

    config = migrate.alembic_config(database_url)
    before = ScriptDirectory.from_config(config).get_revision("0007").down_revision
    command.downgrade(config, before)
    command.upgrade(config, "head")

    with app.state.db.session() as session:
        cases = {c.id: c for c in session.exec(select(Case))}
        lesions = {lesion.id: lesion for lesion in session.exec(select(Lesion))}
    assert len(lesions) == 2
    for case_id, site in ((first.json()["id"], "back"), (second.json()["id"], "face")):
        case = cases[uuid.UUID(case_id)]
        lesion = lesions[case.lesion_id]
        assert (lesion.patient_id, lesion.clinic_id, lesion.site) == (case.patient_id, case.clinic_id, site)
        assert lesion.created_at == case.created_at and lesion.follow_up_due_at is None
