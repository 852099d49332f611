"""`dermalink serve --workers N`: N uvicorn processes, each listening on a socket of its own.

uvicorn's own ``--workers`` shares one listening socket among its processes, and the process that is
idle when a burst of connections arrives can accept nearly all of them, leaving one process, and its
interpreter lock, with nearly all the work (seen in load tests of `bench api`). Here every
process gets its own socket on the same address (``SO_REUSEPORT``), and Linux spreads new connections
over the sockets by hashing each connection's addresses and ports.

The parent binds the sockets (so a port that is taken is refused at once, with the reason) and only
supervises: a process that dies is replaced on the same socket, whose queue keeps the connections that
arrive meanwhile; SIGINT or SIGTERM stops every process, gracefully first. A process whose server could
not start (the app's start-up failed) stops them all, rather than restarting into the same failure.
"""

from __future__ import annotations

import multiprocessing
import signal
import socket
import sys
import threading
import time
from multiprocessing.context import SpawnProcess
from typing import Any

from backend.core.logging import log

FAILED_TO_START = 3  # a process's exit code when its server did not start
GRACE_SECONDS = 30  # how long a process may take to finish its requests when stopped
BACKLOG = 2048  # uvicorn's default

multiprocessing.allow_connection_pickling()  # the spawned processes receive their socket
_spawn = multiprocessing.get_context("spawn")


def listening_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` that other sockets of this user may share (``SO_REUSEPORT``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _serve(app: str, options: dict[str, Any], sock: socket.socket) -> None:
    """One server process: the app on its own socket (runs in the spawned process)."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, factory=True, **options))
    server.run(sockets=[sock])
    if not server.started:
        sys.exit(FAILED_TO_START)


class Supervisor:
    """Runs ``workers`` processes of ``app`` (an app factory's import path) on ``host:port``; ``options``
    are the rest of `uvicorn.Config`'s arguments."""

    def __init__(self, app: str, host: str, port: int, workers: int, options: dict[str, Any]) -> None:
        self.app, self.options = app, options
        self.sockets: list[socket.socket] = []
        try:
            for _ in range(workers):
                self.sockets.append(listening_socket(host, port))
        except BaseException:
            for sock in self.sockets:
                sock.close()
            raise
        self.processes: list[SpawnProcess] = []
        self.stopping = threading.Event()

    def _start(self, index: int) -> SpawnProcess:
        process = _spawn.Process(
            target=_serve, args=(self.app, self.options, self.sockets[index]), name=f"dermalink-serve-{index}"
        )
        process.start()
        return process

    def run(self) -> int:
        """Serve until SIGINT or SIGTERM (0), or until a process fails to start (1)."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self.stopping.set())
        failed = False
        try:
            self.processes = [self._start(i) for i in range(len(self.sockets))]
            log.info("server processes started", pids=[p.pid for p in self.processes])
            while not self.stopping.wait(0.5):
                for index, process in enumerate(self.processes):
                    if process.is_alive():
                        continue
                    if process.exitcode == FAILED_TO_START:
                        log.error("a server process could not start; stopping", pid=process.pid)
                        failed = True
                        self.stopping.set()
                        break
                    log.warning(
                        "a server process died; starting another", pid=process.pid, code=process.exitcode
                    )
                    self.processes[index] = self._start(index)
        finally:
            self.stop()
        return 1 if failed else 0

    def stop(self) -> None:
        """SIGTERM to every process (uvicorn finishes the requests in flight), SIGKILL after the grace."""
        for process in self.processes:
            if process.is_alive():
                process.terminate()
        deadline = time.monotonic() + GRACE_SECONDS
        for process in self.processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
        for sock in self.sockets:
            sock.close()
