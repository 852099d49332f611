"""`dermalink serve --workers N`: every process listens on a socket of its own, so connections are spread
over them; a process that dies is replaced; each process's model computes on its share of the cores; a
port that is taken is refused with the reason."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from backend.inference.factory import model_threads
from benchmarks.standin import MODEL_NAME

REPO = Path(__file__).resolve().parents[2]


def _server_processes(parent: int) -> list[int]:
    """The server processes under ``parent`` (not multiprocessing's resource tracker)."""
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if stat[1] == str(parent) and b"spawn_main" in cmdline:
            pids.append(int(proc.name))
    return sorted(pids)


def _connections_by_process(pids: list[int], port: int) -> dict[int, int]:
    """How many established connections to ``port`` each process holds (from /proc/net/tcp and its fds)."""
    established = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "01":  # ESTABLISHED
                established.add(f"socket:[{fields[9]}]")
    counts = {}
    for pid in pids:
        links = []
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                links.append(os.readlink(fd))
            except OSError:
                continue
        counts[pid] = sum(link in established for link in links)
    return counts


def _both(parent: int, without: int | None = None) -> list[int] | None:
    """The two server processes, once there are two (and ``without`` is not one of them)."""
    pids = _server_processes(parent)
    return pids if len(pids) == 2 and without not in pids else None


def _environment(pid: int) -> dict[str, str]:
    entries = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace").split("\0")
    return dict(entry.split("=", 1) for entry in entries if "=" in entry)


def _wait(predicate, timeout: float = 120.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


@pytest.mark.timeout(600)
def test_connections_are_spread_over_the_processes_and_a_dead_one_is_replaced(model_repository):
    from benchmarks.api import serving

    with serving(model_repository, MODEL_NAME, workers=2) as server:
        port = int(server.base.rsplit(":", 1)[1])
        first = _wait(lambda: _both(server.pid))
        share = str(model_threads(2))
        assert [_environment(pid).get("DERMALINK_ONNX_THREADS") for pid in first] == [share, share]
        clients = [httpx.Client(base_url=server.base, timeout=120) for _ in range(16)]
        try:
            assert all(client.get("/healthz").status_code == 200 for client in clients)
            counts = _connections_by_process(first, port)
            # 16 connections hashed over 2 sockets: all on one would happen about 3 times in 100,000 runs
            assert sum(counts.values()) == 16 and min(counts.values()) >= 1, counts

            os.kill(first[0], signal.SIGKILL)
            replaced = _wait(lambda: _both(server.pid, without=first[0]))
            assert first[1] in replaced  # the other one served on meanwhile
            fresh = httpx.Client(base_url=server.base, timeout=120)
            clients.append(fresh)
            _wait(lambda: all(fresh.get("/readyz").status_code == 200 for _ in range(8)))
        finally:
            for client in clients:
                client.close()
        survivors = replaced
    # stopped with the process group: none of the processes is left behind
    _wait(lambda: not any(Path(f"/proc/{pid}").exists() for pid in survivors), timeout=120)


def test_a_port_that_is_taken_is_refused_with_the_reason(tmp_path):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))  # no SO_REUSEPORT: nobody may share it
    taken.listen()
    port = taken.getsockname()[1]
    env = {
        **os.environ,
        "DERMALINK_ENVIRONMENT": "test",
        "DERMALINK_DATA_DIR": str(tmp_path),
        "DERMALINK_MASTER_KEY": "A" * 43 + "=",
        "DERMALINK_CREATE_DEMO_USERS": "false",
    }
    try:
        result = subprocess.run(
            [sys.executable, "-m", "backend.cli", "serve", "--port", str(port), "--workers", "2"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    finally:
        taken.close()
    assert result.returncode == 1, result.stderr[-2000:]
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "in use" in result.stderr, result.stderr[
        -2000:
    ]
