"""The web app at ``/``: the committed Expo web build, with an SPA fallback and cache headers.

The build (``npx expo export --platform web``, see ``infra/build-web.sh``) is committed under
``backend/static/app`` so that ``./infra/run.sh`` serves the app without Node. ``backend/static/web-build.json``
records a digest of the ``mobile/`` sources it was built from; ``tests/mobile/test_web_build.py`` fails when
the sources change without a rebuild.

- A file of the build is served as is. Hashed bundles and assets (``/_expo/``, ``/assets/``) never change
  under the same name, so they are cached for a year; everything else (``index.html`` first) is revalidated.
- A GET for any other path that accepts HTML is a client route of expo-router (``/patients/123`` reloaded
  in the browser): it gets ``index.html`` and the app routes it. API, documentation and health paths never
  fall back: a missing one stays a JSON 404.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC_DIR = Path(__file__).resolve().parent / "static"
BUILD_DIR = STATIC_DIR / "app"
STAMP_FILE = STATIC_DIR / "web-build.json"
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
HASHED_PREFIXES = ("_expo/", "assets/")
NEVER_FALL_BACK = {"api", "docs", "redoc", "openapi.json", "healthz", "readyz", "metrics"}  # first segments

# What the web build is made from: everything under mobile/ except what cannot change the bundle.
# (mobile/README.md lists the same: tests and test support, lint, jest and the generator script.)
NOT_SOURCES_DIRS = {"node_modules", "dist", ".expo", "web-build", "coverage", "__tests__", "test", "scripts"}
NOT_SOURCES_FILES = {
    "README.md",
    "eslint.config.js",
    "jest.config.js",
    "jest.setup.ts",
    "jest.setup.js",
    ".gitignore",
}


class WebApp(StaticFiles):
    """StaticFiles for the build directory, with cache headers and the client-route fallback."""

    def file_response(self, full_path, stat_result, scope: Scope, status_code: int = 200) -> Response:  # type: ignore[no-untyped-def]
        response = super().file_response(full_path, stat_result, scope, status_code)
        relative = scope["path"].lstrip("/")
        immutable = relative.startswith(HASHED_PREFIXES) and status_code == 200
        response.headers["Cache-Control"] = IMMUTABLE if immutable else REVALIDATE
        return response

    async def get_response(self, path: str, scope: Scope) -> Response:
        try:
            return await super().get_response(path, scope)
        except HTTPException as exc:
            if exc.status_code != 404 or not _client_route(scope):
                raise
        index = Path(str(self.directory)) / "index.html"
        return FileResponse(index, headers={"Cache-Control": REVALIDATE}, media_type="text/html")


def _client_route(scope: Scope) -> bool:
    if scope["method"] not in ("GET", "HEAD"):
        return False
    path = scope["path"].lstrip("/")
    if path.split("/", 1)[0] in NEVER_FALL_BACK or path.startswith(HASHED_PREFIXES):
        return False
    accept = dict(scope["headers"]).get(b"accept", b"").decode("latin-1")
    return "text/html" in accept


# -- build provenance ------------------------------------------------------------------------------------


def source_files(mobile: Path) -> list[Path]:
    """The files the web build is made from (sorted), as ``git`` sees them when it can, else on disk."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", "."],
            cwd=mobile,
            capture_output=True,
            check=True,
        ).stdout.decode()
        candidates = [mobile / name for name in listed.split("\0") if name]
    except (OSError, subprocess.CalledProcessError):
        candidates = [Path(root) / name for root, _dirs, names in os.walk(mobile) for name in names]
    chosen = []
    for path in candidates:
        relative = path.relative_to(mobile)
        if not path.is_file() or relative.name in NOT_SOURCES_FILES:
            continue
        if NOT_SOURCES_DIRS & set(relative.parts[:-1]) or ".test." in relative.name:
            continue
        chosen.append(path)
    return sorted(chosen, key=lambda p: p.relative_to(mobile).as_posix())


def source_digest(mobile: Path) -> str:
    """SHA-256 over the relative names and contents of the build's sources (lockfile included)."""
    digest = hashlib.sha256()
    for path in source_files(mobile):
        digest.update(path.relative_to(mobile).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def write_stamp(mobile: Path, build: Path = BUILD_DIR, stamp: Path = STAMP_FILE) -> dict[str, object]:
    record = {
        "source_digest": source_digest(mobile),
        "files": len(source_files(mobile)),
        "built_files": sorted(p.relative_to(build).as_posix() for p in build.rglob("*") if p.is_file()),
    }
    stamp.write_text(json.dumps(record, indent=1) + "\n")
    return record


if __name__ == "__main__":  # python -m backend.web stamp <mobile dir>: called by infra/build-web.sh
    if len(sys.argv) != 3 or sys.argv[1] != "stamp":
        sys.exit("usage: python -m backend.web stamp <mobile dir>")
    written = write_stamp(Path(sys.argv[2]).resolve())
    print(f"{STAMP_FILE}: {written['source_digest']} ({written['files']} source files)")
