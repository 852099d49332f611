"""End-to-end: the real backend on its embedded defaults, the web app in Debian's headless Chromium.

Each scenario is a playwright-core script (`scenarios/<name>.mjs`, Node) run against a `dermalink serve`
started here on a free loopback port, in development mode on a temporary data directory (SQLite, local
encrypted blobs, in-process ONNX Runtime), so the demo accounts it prints exist. The Python side reads
the printed passwords and TOTP secret, hands them to the script in `E2E_CONFIG`, and checks the outcome
through the API.

Screenshots go to a temporary folder; set DERMALINK_E2E_SCREENSHOTS=docs/screenshots to refresh the
committed ones (they are shrunk to small palette PNGs).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest

from tests.conftest import REPO

E2E = Path(__file__).resolve().parent
CHROMIUM = Path("/usr/bin/chromium")
START_CEILING_S = 180  # first start migrates, creates keys and loads the model: slow on a loaded machine
SCENARIO_CEILING_S = 900
DEBUG_DIR = Path(os.environ.get("DERMALINK_E2E_DEBUG", "/tmp/dermalink-e2e"))  # screenshots of failures


@dataclass
class Server:
    url: str
    data_dir: Path
    accounts: dict[str, dict[str, str]]
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)

    def token(self, role: str) -> str:
        """An access token for a demo account, through the real login (with a TOTP code for the admin)."""
        account = self.accounts[role]
        body = {"email": account["email"], "password": account["password"]}
        for _attempt in range(3):
            if "totp_secret" in account:
                body["totp_code"] = pyotp.TOTP(account["totp_secret"]).now()
            response = httpx.post(f"{self.url}/api/v1/auth/login", json=body, timeout=60)
            if response.status_code == 200:
                return response.json()["access_token"]
            time.sleep(31 - time.time() % 30)  # the code of this 30 s step was used already: next one
        raise AssertionError(f"login as {role} failed: {response.status_code} {response.text}")

    def api(self, role: str) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.url}/api/v1", headers={"Authorization": f"Bearer {self.token(role)}"}, timeout=60
        )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _parse_accounts(lines: list[str]) -> dict[str, dict[str, str]]:
    accounts: dict[str, dict[str, str]] = {}
    last = None
    for line in lines:
        match = re.match(r"\s+(\w+)\s+(\S+@\S+)\s+password: (\S+)", line)
        if match:
            last = match.group(1)
            accounts[last] = {"email": match.group(2), "password": match.group(3)}
        secret = re.search(r"TOTP secret \(add to an authenticator app\): (\S+)", line)
        if secret and last:
            accounts[last]["totp_secret"] = secret.group(1)
    return accounts


def start_server(data_dir: Path, **env: str) -> Server:
    port = _free_port()
    environment = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "PYTHONUNBUFFERED": "1",
        "DERMALINK_ENVIRONMENT": "development",
        "DERMALINK_DATA_DIR": str(data_dir),
        **env,
    }
    for name in (
        "DERMALINK_DATABASE_URL",
        "DERMALINK_MASTER_KEY",
        "DERMALINK_BLOB_STORE_URL",
        "DERMALINK_QUEUE",
    ):
        environment.pop(name, None)  # the embedded defaults, whatever the calling shell set
    process = subprocess.Popen(
        [sys.executable, "-m", "backend.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output: list[str] = []
    assert process.stdout is not None
    threading.Thread(target=lambda: output.extend(process.stdout), daemon=True).start()  # type: ignore[arg-type]
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_CEILING_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError("dermalink serve exited:\n" + "".join(output))
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    else:
        stop_server(process)
        raise AssertionError(f"dermalink serve not ready after {START_CEILING_S} s:\n" + "".join(output))
    accounts = _parse_accounts(output)
    assert set(accounts) == {"clinician", "dermatologist", "admin"}, "".join(output)
    return Server(url, data_dir, accounts, process, output)


def stop_server(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="session")
def e2e_tools() -> None:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: apt-get install chromium (infra/test.sh does)")
    if not (E2E / "node_modules" / "playwright-core").is_dir():
        pytest.fail("playwright-core is missing: run `npm ci` in tests/e2e (infra/test.sh does)")
    from backend import web

    if not (web.BUILD_DIR / "index.html").is_file():
        pytest.fail("no web build in backend/static/app: run infra/build-web.sh")


@pytest.fixture(scope="session")
def server(e2e_tools, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the scenarios that need no special settings (demo accounts are created once)."""
    running = start_server(tmp_path_factory.mktemp("e2e-data"))
    yield running
    stop_server(running.process)


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wanted = os.environ.get("DERMALINK_E2E_SCREENSHOTS")
    return (REPO / wanted).resolve() if wanted else tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="session")
def lesion_image(shared_dir: Path) -> Path:
    """A real full-size HAM10000 image (CC BY-NC 4.0, see shared/data/ham10000/README.md)."""
    return min((shared_dir / "data" / "ham10000" / "full_size").glob("*.jpg"))


def run_scenario(name: str, server: Server, screenshots: Path, **values: Any) -> dict[str, Any]:
    """Run scenarios/<name>.mjs; fail with its output unless it exits 0; return its last JSON line."""
    DEBUG_DIR.mkdir(parents=True, exist_ok=True)
    config = {
        "baseUrl": server.url,
        "accounts": server.accounts,
        "chromium": str(CHROMIUM),
        "screenshots": str(screenshots),
        "debug": str(DEBUG_DIR),
        **values,
    }
    result = subprocess.run(
        ["node", str(E2E / "scenarios" / f"{name}.mjs")],
        cwd=E2E,
        env={**os.environ, "E2E_CONFIG": json.dumps(config)},
        capture_output=True,
        text=True,
        timeout=SCENARIO_CEILING_S,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(
            f"scenario {name} failed ({result.returncode}):\n{result.stdout[-15000:]}\n{result.stderr[-15000:]}"
            f"\n--- server output (tail) ---\n{''.join(server.output)[-5000:]}",
            pytrace=False,
        )
    shrink_screenshots(screenshots)
    return json.loads(result.stdout.strip().splitlines()[-1])


def shrink_screenshots(folder: Path) -> None:
    """Palette PNGs (256 colours, optimised): the committed screenshots stay small."""
    from PIL import Image

    for path in folder.glob("*.png"):
        with Image.open(path) as image:
            if image.mode == "P":
                continue
            small = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
        small.save(path, optimize=True)


__all__ = ["Server", "run_scenario", "start_server", "stop_server"]
