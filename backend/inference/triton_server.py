"""Start and stop the real Triton Inference Server binary shipped in the ``nvidia-pytriton`` wheel, on CPU.

The wheel lives in Triton's own virtualenv (``<repo>/.venv-triton``, made by ``infra/triton/setup.sh`` /
``dermalink triton setup``): its python backend needs numpy < 2, and the backend stub takes its
packages from the ``python3`` first on ``PATH``, so that venv's ``bin/`` goes first on ``PATH``.
The wheel's ``backends/`` folder is copied to a writable place together with the Python 3.11 stub.
perf_analyzer (from ``tritonclient[all]==2.50.0`` in the same venv) is located here too.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

REPO_ROOT = Path(__file__).resolve().parents[2]
SETUP_SCRIPT = REPO_ROOT / "infra" / "triton" / "setup.sh"
SETUP_HINT = "run `dermalink triton setup` (or infra/triton/setup.sh) first"


class TritonSetupError(RuntimeError):
    """Triton's virtualenv or one of its binaries is missing."""


class TritonStartError(RuntimeError):
    """The server did not become ready."""


def default_venv() -> Path:
    return Path(os.environ.get("DERMALINK_TRITON_VENV", REPO_ROOT / ".venv-triton"))


def default_build_dir() -> Path:
    return Path(os.environ.get("DERMALINK_BUILD_DIR", REPO_ROOT / "build"))


@dataclass(frozen=True)
class TritonInstall:
    venv: Path
    site: Path

    @classmethod
    def find(cls, venv: Path | None = None) -> TritonInstall:
        venv = Path(venv or default_venv())
        if not (venv / "bin" / "python").exists():
            raise TritonSetupError(f"Triton's virtualenv {venv} does not exist: {SETUP_HINT}")
        sites = sorted(venv.glob("lib/python3*/site-packages"))
        if not sites or not (sites[0] / "pytriton" / "tritonserver" / "bin" / "tritonserver").exists():
            raise TritonSetupError(f"nvidia-pytriton is not installed in {venv}: {SETUP_HINT}")
        return cls(venv=venv, site=sites[0])

    @property
    def python_version(self) -> str:
        return self.site.parent.name.removeprefix("python")

    @property
    def server_binary(self) -> Path:
        return self.site / "pytriton" / "tritonserver" / "bin" / "tritonserver"

    @property
    def libs(self) -> Path:
        return self.site / "nvidia_pytriton.libs"

    @property
    def perf_analyzer(self) -> Path:
        path = self.venv / "bin" / "perf_analyzer"
        if not path.exists():
            raise TritonSetupError(
                f"perf_analyzer (tritonclient[all]==2.50.0) is missing in {self.venv}: {SETUP_HINT}"
            )
        return path

    def perf_analyzer_env(self) -> dict[str, str]:
        cudart = self.site / "nvidia" / "cuda_runtime" / "lib"
        if not (cudart / "libcudart.so.12").exists():
            raise TritonSetupError(
                f"libcudart.so.12 (nvidia-cuda-runtime-cu12) is missing in {self.venv}: {SETUP_HINT}"
            )
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(cudart), env.get("LD_LIBRARY_PATH")]))
        return env

    def backend_dir(self, build_dir: Path) -> Path:
        """A writable copy of the wheel's ``backends/`` with this venv's python stub inside."""
        src = self.site / "pytriton" / "tritonserver" / "backends"
        stub = (
            self.site
            / "pytriton"
            / "tritonserver"
            / "python_backend_stubs"
            / self.python_version
            / "triton_python_backend_stub"
        )
        if not stub.exists():
            raise TritonSetupError(
                f"no python backend stub for Python {self.python_version} in {stub.parent.parent}"
            )
        dst = Path(build_dir) / "triton_backends"
        marker = dst / ".source"
        if not (marker.exists() and marker.read_text() == str(src)):
            if dst.exists():
                shutil.rmtree(dst)
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
            shutil.copy2(stub, dst / "python" / "triton_python_backend_stub")
            marker.write_text(str(src))
        return dst

    def server_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PATH"] = os.pathsep.join([str(self.venv / "bin"), env.get("PATH", "")])
        env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(self.libs), env.get("LD_LIBRARY_PATH")]))
        env["VIRTUAL_ENV"] = str(self.venv)
        env.pop("PYTHONPATH", None)
        env.pop("PYTHONHOME", None)
        return env


def _wait_exited(pid: int, timeout: float) -> bool:
    """Wait until the child ``pid`` has exited, leaving it unreaped (a zombie keeps its pid)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:  # already reaped
            return True
        if info is not None:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def live_processes() -> Iterator[tuple[int, int, str]]:
    """``(pid, process group, command line)`` of every running (not zombie) process, from /proc."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = stat.with_name("cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and fields[0] != "Z":
            yield int(stat.parent.name), int(fields[2]), cmdline


def _group_has_live_members(pgid: int) -> bool:
    return any(group == pgid for _, group, _ in live_processes())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class TritonServer:
    """One ``tritonserver`` process. Use as a context manager, or ``start()`` / ``stop()``."""

    model_repository: Path
    http_port: int = 0
    grpc_port: int = 0
    metrics_port: int = 0
    host: str = "127.0.0.1"
    model_control: str = "none"  # "explicit" lets tests load/unload models through the API
    load_models: list[str] | None = None  # with "explicit": models loaded at start (None: all)
    exit_timeout_s: int = (
        30  # on stop, Triton waits this long for in-flight requests and open HTTP connections
    )
    venv: Path | None = None
    build_dir: Path | None = None
    log_path: Path | None = None
    extra_args: list[str] = field(default_factory=list)
    _proc: subprocess.Popen | None = field(default=None, init=False, repr=False)
    _log: object = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.install = TritonInstall.find(self.venv)
        self.build_dir = Path(self.build_dir or default_build_dir())
        self.http_port = self.http_port or free_port()
        self.grpc_port = self.grpc_port or free_port()
        self.metrics_port = self.metrics_port or free_port()
        self.log_path = Path(self.log_path or self.build_dir / f"tritonserver-{self.http_port}.log")

    @property
    def http_url(self) -> str:
        return f"{self.host}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    def command(self) -> list[str]:
        cmd = [
            str(self.install.server_binary),
            f"--model-repository={Path(self.model_repository).resolve()}",
            f"--backend-directory={self.install.backend_dir(self.build_dir)}",
            f"--http-address={self.host}",
            f"--grpc-address={self.host}",
            f"--metrics-address={self.host}",
            f"--http-port={self.http_port}",
            f"--grpc-port={self.grpc_port}",
            f"--metrics-port={self.metrics_port}",
            "--allow-gpu-metrics=false",
            "--allow-cpu-metrics=false",
            f"--model-control-mode={self.model_control}",
            "--log-verbose=0",
            f"--exit-timeout-secs={self.exit_timeout_s}",
            # Our own prefix for the python backend's shared-memory regions, so they can be removed
            # after a crash (SIGKILL leaves them in /dev/shm).
            f"--backend-config=python,shm-region-prefix-name={self.shm_prefix}",
        ]
        if self.model_control == "explicit":
            cmd += [
                f"--load-model={m}" for m in (self.load_models if self.load_models is not None else ["*"])
            ]
        return cmd + list(self.extra_args)

    @property
    def shm_prefix(self) -> str:
        return f"dermalink_triton_{os.getpid()}_{self.http_port}"

    def start(self, timeout: float = 60.0) -> TritonServer:
        if self.running:
            return self
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        # A stop request (SIGTERM or Ctrl-C turned into KeyboardInterrupt) arriving while Popen runs would
        # leave a started server that nobody holds: hold those signals until `_proc` is set (the child
        # gets them unblocked), then `stop()` below sees the server and ends it.
        stopping = {signal.SIGINT, signal.SIGTERM}
        held = signal.pthread_sigmask(signal.SIG_BLOCK, stopping)
        try:
            self._proc = subprocess.Popen(
                self.command(),
                env=self.install.server_env(),
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=lambda: signal.pthread_sigmask(signal.SIG_SETMASK, held),  # noqa: PLW1509
            )
        except BaseException:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
            raise
        try:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)  # a stop request that came meanwhile lands here
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def is_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.http_url}/v2/health/ready", timeout=1) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise TritonStartError(
                    f"tritonserver exited with code {self._proc.returncode}; log {self.log_path}:\n{self.log_tail()}"
                )
            if self.is_ready():
                return
            time.sleep(0.2)
        raise TritonStartError(
            f"tritonserver not ready after {timeout:.0f}s; log {self.log_path}:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float | None = None) -> None:
        """Graceful stop (SIGINT: Triton drains in-flight requests for up to ``exit_timeout_s``), then SIGKILL."""
        self._terminate(signal.SIGINT, self.exit_timeout_s + 10 if timeout is None else timeout)

    def kill(self) -> None:
        """Stop abruptly (SIGKILL), like a crash or a lost node."""
        self._terminate(signal.SIGKILL, 10)

    def _terminate(self, sig: int, timeout: float) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, sig)  # not Popen.send_signal: it would reap an exited server
                _wait_exited(proc.pid, timeout)  # without reaping: its pid stays reserved as our group id
            # The server's process group (start_new_session=True) holds its python backend stubs: a
            # killed server leaves them running, so end whatever is left of the group, then reap.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
                deadline = time.monotonic() + 5
                while _group_has_live_members(proc.pid) and time.monotonic() < deadline:
                    time.sleep(0.02)
            proc.wait()
            for region in Path("/dev/shm").glob(f"{self.shm_prefix}*"):
                region.unlink(missing_ok=True)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def run_setup(venv: Path | None = None) -> None:
    """Run ``infra/triton/setup.sh`` (idempotent)."""
    args = ["bash", str(SETUP_SCRIPT)]
    if venv:
        args.append(str(venv))
    proc = subprocess.run(args, check=False, capture_output=True, text=True)
    print(proc.stdout, end="")
    print(proc.stderr, end="", file=sys.stderr)
    if proc.returncode != 0:
        raise TritonSetupError(f"{SETUP_SCRIPT} failed with exit code {proc.returncode}")
