"""The committed web build (backend/static/app) is the build of the committed mobile/ sources.

`infra/build-web.sh` exports the app and writes backend/static/web-build.json with a digest of the sources
it was built from; when mobile/ changes without a rebuild, this fails and says what to run.
"""

from __future__ import annotations

import json
import re

from backend import web
from tests.mobile.conftest import MOBILE


def test_committed_web_build_matches_the_mobile_sources():
    assert web.STAMP_FILE.is_file(), "no web build stamp: run infra/build-web.sh and commit backend/static"
    stamp = json.loads(web.STAMP_FILE.read_text())
    assert stamp["source_digest"] == web.source_digest(MOBILE), (
        "mobile/ changed since backend/static/app was built: run infra/build-web.sh and commit backend/static"
    )
    built = sorted(p.relative_to(web.BUILD_DIR).as_posix() for p in web.BUILD_DIR.rglob("*") if p.is_file())
    assert built == stamp["built_files"], (
        "backend/static/app has files the build did not write (or lacks some)"
    )


def test_index_html_loads_only_files_the_build_contains():
    index = (web.BUILD_DIR / "index.html").read_text()
    scripts = re.findall(r'src="/([^"]+)"', index)
    assert scripts, "index.html loads no script"
    for relative in scripts:
        assert (web.BUILD_DIR / relative).is_file(), (
            f"index.html loads /{relative}, which is not in the build"
        )


def test_digest_changes_with_a_source_and_not_with_a_test_or_the_readme(tmp_path):
    (tmp_path / "src" / "__tests__").mkdir(parents=True)
    (tmp_path / "src" / "screen.tsx").write_text("export const a = 1;\n")
    (tmp_path / "src" / "__tests__" / "screen.test.tsx").write_text("test('a', () => {});\n")
    (tmp_path / "src" / "test").mkdir()
    (tmp_path / "src" / "test" / "api.ts").write_text("export const mock = 1;\n")
    (tmp_path / "README.md").write_text("notes\n")
    before = web.source_digest(tmp_path)
    (tmp_path / "README.md").write_text("more notes\n")
    (tmp_path / "src" / "test" / "api.ts").write_text("export const mock = 2;\n")
    (tmp_path / "src" / "__tests__" / "screen.test.tsx").write_text("test('b', () => {});\n")
    assert web.source_digest(tmp_path) == before
    (tmp_path / "src" / "screen.tsx").write_text("export const a = 2;\n")
    assert web.source_digest(tmp_path) != before
