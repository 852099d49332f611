"""The mobile app's own checks (TypeScript, ESLint, Jest) and the ties between it and the backend.

The packages come from the committed lockfile: `infra/test.sh` runs `npm ci` in `mobile/` when the
lockfile changed. Every check shells out to the tool and fails with the tool's own output.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import REPO

MOBILE = REPO / "mobile"


@pytest.fixture(scope="session")
def mobile_dir() -> Path:
    if shutil.which("npx") is None:
        pytest.fail("Node and npm are needed for the mobile checks (Node 20; see README.md)")
    if not (MOBILE / "node_modules").is_dir():
        pytest.fail("mobile/node_modules is missing: run `npm ci` in mobile/ (infra/test.sh does)")
    return MOBILE


Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def run_in_mobile(mobile_dir: Path) -> Run:
    """Run a command in mobile/; the test fails with its output when it exits non-zero."""

    def run(*command: str, timeout: float = 1200) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "CI": "1", "EXPO_NO_TELEMETRY": "1", "NO_COLOR": "1", "FORCE_COLOR": "0"}
        result = subprocess.run(
            command, cwd=mobile_dir, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if result.returncode != 0:
            pytest.fail(
                f"`{' '.join(command)}` exited {result.returncode}:\n{result.stdout[-20000:]}\n{result.stderr[-20000:]}",
                pytrace=False,
            )
        return result

    return run
