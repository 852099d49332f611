"""The web app at /: files of the build, client routes falling back to index.html, cache headers."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from backend import web
from backend.main import create_app

HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
BUNDLE = "_expo/static/js/web/entry-0123abcd.js"


@pytest.fixture
def web_client(settings, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """An app serving a small build of the same shape as Expo's web export."""
    build = tmp_path / "build"
    (build / "_expo/static/js/web").mkdir(parents=True)
    (build / "index.html").write_text(
        f'<!doctype html><title>DermaLink</title><script src="/{BUNDLE}"></script>'
    )
    (build / BUNDLE).write_text("console.log('app');")
    (build / "favicon.ico").write_bytes(b"\0\0\1\0")
    monkeypatch.setattr(web, "BUILD_DIR", build)
    app = create_app(settings)
    with TestClient(app) as client:
        yield client
    app.state.db.dispose()


def test_root_and_client_routes_serve_index_html_revalidated(web_client):
    client_routes = ("/", "/patients/0b6f3c1e-8c1a-4a57-9a0e-3f1c2a9b7d10", "/admin/audit?page=2", "/apiary")
    for path in client_routes:
        response = web_client.get(path, headers=HTML)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith("text/html")
        assert "<title>DermaLink</title>" in response.text
        assert response.headers["cache-control"] == "no-cache"


def test_hashed_bundles_are_cached_for_a_year(web_client):
    response = web_client.get(f"/{BUNDLE}")
    assert response.status_code == 200 and response.text == "console.log('app');"
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert web_client.get("/favicon.ico").headers["cache-control"] == "no-cache"  # not hashed


def test_api_docs_and_missing_assets_never_fall_back_to_the_app(web_client):
    for path in ("/api/v1/no-such-thing", "/api/v2/cases", "/docs/missing", "/_expo/static/js/web/gone.js"):
        response = web_client.get(path, headers=HTML)
        assert response.status_code == 404, path
        assert response.json()["type"] == "not_found"
    assert web_client.get("/docs", headers=HTML).status_code == 200  # the API documentation itself
    assert web_client.get("/healthz", headers=HTML).headers["content-type"].startswith("application/json")
    # A script or image request for a client route is a mistake, not a page load: 404, not HTML.
    assert web_client.get("/patients/1", headers={"Accept": "application/json"}).status_code == 404
    assert web_client.post("/patients/1", headers=HTML).status_code in (404, 405)
