"""The real server (`dermalink serve` in a subprocess): no banner, bounded request heads, /docs rendering
offline under its Content-Security-Policy in Chromium, and a property-based API test.

Schemathesis generates requests for every operation of the OpenAPI document and sends them to the
server, as a clinician and as an admin.

Valid requests (positive mode) and requests that break the document (negative mode). Checks: no 5xx,
every status code is documented, and every response body matches its documented schema.
Bounded by examples per operation (not by time: schemathesis' time bound keeps generating until the time
is spent), deterministic (`derandomize`), so a failure reproduces. `POST /auth/logout` is left out: it
would end the login the rest of the run uses. Logins it generates use random e-mails, so no real account
is locked; wrong current passwords only throttle the fuzzing address (documented 429s).
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import requests

from backend.users.models import Role
from tests.conftest import MASTER_KEY, REPO

pytestmark = pytest.mark.slow

EXAMPLES_PER_OPERATION = int(os.environ.get("DERMALINK_FUZZ_EXAMPLES", "12"))
EXCLUDED = {("POST", "/api/v1/auth/logout")}
# Public API operations with no parameters, body or token: there is no wrong way to call them.
NO_INPUT = {("GET", "/api/v1/auth/oidc/config"), ("GET", "/api/v1/auth/oidc/login")}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def live_server(app, settings, tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """`dermalink serve` on the test database (the in-process ``app`` fixture created and empties it)."""
    port = _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "DERMALINK_ENVIRONMENT": "test",
        "DERMALINK_DATABASE_URL": settings.database_url,
        "DERMALINK_DATA_DIR": str(tmp_path / "server"),
        "DERMALINK_MASTER_KEY": MASTER_KEY,
        "DERMALINK_CREATE_DEMO_USERS": "false",
        "DERMALINK_AUTO_MIGRATE": "false",
        "DERMALINK_MODEL_REPOSITORY": str(settings.model_repository),
        "DERMALINK_ANALYSIS_WAIT_SECONDS": "0.5",
    }
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "backend.cli", "serve", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if requests.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"server did not start:\n{(tmp_path / 'server.log').read_text()[-3000:]}")
            time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def test_live_server_has_no_banner_and_bounds_request_heads(live_server):
    response = requests.get(f"{live_server}/healthz", timeout=10)
    assert response.status_code == 200 and "server" not in response.headers
    assert response.headers["x-content-type-options"] == "nosniff"
    too_big = requests.get(f"{live_server}/healthz", headers={"X-Padding": "a" * 20_000}, timeout=10)
    assert too_big.status_code == 431
    try:  # far past the limit, the server stops reading: an error status or a closed connection
        huge = requests.get(f"{live_server}/healthz", headers={"X-Padding": "a" * 2_000_000}, timeout=10)
        assert huge.status_code in (400, 431)
    except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
        pass


def test_docs_render_offline_under_the_content_security_policy(live_server, tmp_path):
    """Chromium loads /docs from this server only (no network beyond it) and Swagger UI renders every
    operation: its scripts run under ``script-src 'self'`` and nothing comes from a CDN."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("chromium is needed (infra/test.sh installs the Debian package)")
    result = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'chromium'}",
            "--virtual-time-budget=15000",
            "--dump-dom",
            f"{live_server}/docs",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rendered = set(re.findall(r'class="opblock-summary-path" data-path="([^"]+)"', result.stdout))
    spec = requests.get(f"{live_server}/openapi.json", timeout=10).json()
    assert rendered == set(spec["paths"]), sorted(set(spec["paths"]) ^ rendered)
    assert "Content Security Policy" not in result.stderr


def _fuzz(operation, session, headers, checks, mode, examples):  # type: ignore[no-untyped-def]
    """A hypothesis test that sends ``examples`` generated requests for ``operation``: valid ones
    (positive mode) or ones that break the document (negative mode: wrong types, missing fields...)."""
    import hypothesis
    from hypothesis import HealthCheck

    @hypothesis.settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    @hypothesis.given(case=operation.as_strategy(mode))
    def run(case):  # type: ignore[no-untyped-def]
        case.call_and_validate(session=session, headers=headers, checks=checks, timeout=60)

    return run


def test_every_operation_as_clinician_and_admin(live_server, make_user):
    import schemathesis
    from hypothesis.errors import Unsatisfiable

    modes = {
        schemathesis.GenerationMode.POSITIVE: EXAMPLES_PER_OPERATION,
        schemathesis.GenerationMode.NEGATIVE: max(1, EXAMPLES_PER_OPERATION // 2),
    }
    checks = [
        schemathesis.checks.not_a_server_error,
        schemathesis.checks.status_code_conformance,
        schemathesis.checks.response_schema_conformance,
    ]
    schema = schemathesis.openapi.from_url(f"{live_server}/openapi.json")
    tokens = {role: make_user(role).headers for role in (Role.clinician, Role.admin)}
    session = requests.Session()
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in EXCLUDED:
            continue
        operations += 1
        for (role, headers), (mode, examples) in itertools.product(tokens.items(), modes.items()):
            run = _fuzz(operation, session, headers, checks, mode, examples)
            try:
                run()
            except Unsatisfiable:  # negative mode: an operation without any input cannot be called wrongly
                assert mode is schemathesis.GenerationMode.NEGATIVE and (
                    not operation.path.startswith("/api/")
                    or (operation.method.upper(), operation.path) in NO_INPUT
                )
            # One operation's failure (schemathesis groups its findings in a BaseExceptionGroup): note it
            # and go on, so that one run reports them all.
            except (Exception, schemathesis.errors.FailureGroup) as exc:  # noqa: BLE001
                failures.append(
                    f"{role.value} {mode.value} {operation.method.upper()} {operation.path}: {exc}"[:3000]
                )
    assert operations >= 30
    assert not failures, "\n\n".join(failures)
