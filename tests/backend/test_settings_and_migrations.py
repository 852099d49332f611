"""Settings safety checks, the master key file, and models-vs-migrations."""

from __future__ import annotations

import os
import stat

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from pydantic import SecretStr

from backend.config import ConfigurationError, Settings
from backend.core.keys import load_master_key
from backend.db import make_engine
from backend.models import metadata


def test_master_key_file_is_created_once_with_0600(tmp_path):
    settings = Settings(data_dir=tmp_path)
    key = load_master_key(settings)
    path = tmp_path / "master.key"
    assert len(key) == 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_master_key(settings) == key  # read back, not regenerated


def test_production_refuses_unsafe_settings_and_says_which(tmp_path):
    key_file = tmp_path / "master.key"
    load_master_key(Settings(data_dir=tmp_path))
    os.chmod(key_file, 0o644)
    with pytest.raises(ConfigurationError) as error:
        Settings(environment="production", data_dir=tmp_path).check_production()
    message = str(error.value)
    assert (
        "DERMALINK_SECRET_KEY" in message and "SQLite" in message and "readable by group or others" in message
    )


def test_production_accepts_safe_settings(tmp_path):
    load_master_key(Settings(data_dir=tmp_path))
    Settings(
        environment="production",
        data_dir=tmp_path,
        secret_key=SecretStr("s" * 40),
        database_url="postgresql://db.internal/dermalink",
        create_demo_users=False,
    ).check_production()


def test_production_never_generates_a_missing_key(tmp_path):
    settings = Settings(environment="production", data_dir=tmp_path)
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_master_key(settings)
    assert not (tmp_path / "master.key").exists()


def test_models_and_migrations_agree(database_url):
    engine = make_engine(database_url)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}), metadata)
    engine.dispose()
    assert diff == [], f"models and migrations differ; add a migration: {diff}"
