"""Storage fixtures: ``blob_store`` runs each contract test on the local store and on a real S3 server."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.storage import BlobStore, LocalBlobStore, make_blob_store
from tests.backend.storage.seaweedfs import s3_blob_url, seaweedfs, seaweedfs_s3_url  # noqa: F401


@pytest.fixture(params=["local", "s3"])
def blob_store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs")
    return make_blob_store(request.getfixturevalue("s3_blob_url"), tmp_path / "unused")
