"""A model with only the probabilities (no ``class_maps`` output) still analyses: no heatmap, the route
answers 404. And migrations 0008 and 0009 go down and up again on a database with results (its own
database)."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import text

from backend import migrate
from tests.backend.cases.conftest import submit
from tests.conftest import DATABASES, migrated_database


@pytest.fixture(params=DATABASES)
def database_url(request, tmp_path):  # type: ignore[no-untyped-def]
    """A database of this test's own: it is migrated down and up again."""
    yield from migrated_database(request.param, tmp_path / "heatmaps.db")


@pytest.fixture
def model_repository(tmp_path_factory):  # type: ignore[no-untyped-def]
    """The stand-in model: same tensors as the shipped one, without the class maps."""
    from benchmarks.standin import build_repository

    return build_repository(tmp_path_factory.mktemp("no_class_maps"))


def test_a_model_without_class_maps_gives_no_heatmap_and_migrations_0008_0009_round_trip(
    app, client, consenting, lesion_jpeg, database_url
):
    case = submit(client, consenting, [lesion_jpeg]).json()
    assert case["analysis"]["status"] == "done", case["analysis"]
    assert case["analysis"]["results"][0]["heatmap_url"] is None
    url = f"/api/v1/cases/{case['id']}/images/{case['images'][0]['id']}/heatmap"
    missing = client.get(url, headers=consenting["clinic"].clinician.headers)
    assert missing.status_code == 404 and missing.json()["type"] == "not_found"

    app.state.db.dispose()
    config = migrate.alembic_config(database_url)
    command.downgrade(config, "0007")
    with app.state.db.engine.connect() as conn:
        columns = list(conn.execute(text("SELECT * FROM analysis_result")).keys())
        assert "heatmap_blob_key" not in columns and "class_map" not in columns
    command.upgrade(config, "head")
    with app.state.db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM analysis_result")).scalar_one() == 1
        row = conn.execute(text("SELECT heatmap_blob_key, class_map FROM analysis_result")).one()
        assert tuple(row) == (None, None)
