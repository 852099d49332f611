"""`dermalink bench api`: real JPEG uploads through the HTTP API at increasing concurrency.

It starts `dermalink serve` in a subprocess on a fresh data directory (SQLite, local encrypted blobs, the
embedded analysis runner and in-process ONNX Runtime: the embedded defaults), then
``dermalink serve --workers N`` on the same kind of data directory (N > 1), and with ``--postgres`` also
``dermalink serve --workers N`` on a fresh PostgreSQL database, registers a clinician, a consenting
patient and a published consent version, then sends `POST /api/v1/cases` submissions of real HAM10000
images. Each submission waits for its analysis, so its latency is the clinician's wait from upload to AI
answer. In the same run it measures the bare model (`OnnxClassifier`) on the same images: batch-1
latency and the best batched throughput, so the results are ratios on one machine.

The per-stage breakdown reads the server's own Prometheus metrics (``/metrics``, scraped before and
after a sequential run): the same numbers an operator sees, no wrapping of production functions.
The server logs at WARNING during the run (no per-request line).
"""

from __future__ import annotations

import base64
import csv
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import httpx
import numpy as np

from benchmarks.triton import CpuMeter, command_line, machine_columns, machine_description, machine_line

PASSWORD = "benchmark passphrase 1234"
METRICS_TOKEN = "benchmark-scrape-token"
# The bars: p50 at concurrency 1 within 4x the bare batch-1 p50 (stretch 2.5x); throughput at the
# highest concurrency at least 30% of the bare model's best batched throughput (stretch 50%).
P50_BAR, P50_STRETCH, THROUGHPUT_BAR, THROUGHPUT_STRETCH = 4.0, 2.5, 0.30, 0.50
# The bare model, measured before and after the servers: batch-1 calls, batch sizes, images per size.
BARE_SINGLE_CALLS, BARE_BATCH_SIZES, BARE_BATCH_IMAGES = 100, (1, 4, 8, 16), 256
DRIFT_LIMIT = 1.15  # the two bare-model measurements further apart than this: the report says so


@dataclass(frozen=True)
class ApiBenchConfig:
    images_dir: Path
    out_dir: Path
    model_repository: Path
    model_name: str = "ham10000_mobilenetv2"
    concurrency: tuple[int, ...] = (1, 2, 4, 8, 16)
    requests_per_level: int = 48
    warmup: int = 4
    max_images: int = 35
    name: str = "api"
    breakdown: int = 20  # sequential requests whose stage timings are read from /metrics (0: skip)
    postgres_url: str | None = None  # a server to create a scratch database on (also measure PostgreSQL)
    workers: int = 2  # server processes of the multi-process measurements (SQLite, and PostgreSQL)


@dataclass
class Level:
    concurrency: int
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    throughput: float  # images (= requests) per second
    analysed_in_response: float  # share of responses that already carried the AI result
    other_cores: float = 0.0  # CPU cores other processes kept busy meanwhile (a shared machine)
    server_cpu_ms: float = 0.0  # CPU time (user + system, all its processes) the server spent per request
    images_per_batch: float = 0.0  # mean images per model call (from the server's /metrics; 0: none)
    submissions_per_commit: float = 0.0  # mean submissions per group commit (from /metrics; 0: none)
    statuses: dict = field(default_factory=dict)


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def bare_model(config: ApiBenchConfig, images: list[bytes]) -> dict:
    """One measurement of the bare model on the same images: every batch-1 latency, and each batch
    size's throughput with its CPU per image (all threads of this process). `combine_bare` joins the
    measurements taken before and after the servers'."""
    from backend.inference.onnx import OnnxClassifier
    from backend.inference.preprocess import batch, load_image

    classifier = OnnxClassifier(config.model_repository, config.model_name)
    pixels = batch([load_image(data) for data in images])
    classifier.predict_batch(pixels[:1])  # warm-up
    single = []
    for i in range(BARE_SINGLE_CALLS):
        start = time.perf_counter()
        classifier.predict_batch(pixels[i % len(pixels) : i % len(pixels) + 1])
        single.append((time.perf_counter() - start) * 1000)
    rates = {}
    for size in BARE_BATCH_SIZES:
        reps = max(8, BARE_BATCH_IMAGES // size)
        chunk = np.concatenate([pixels] * (size // len(pixels) + 1))[:size]
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(reps):
            classifier.predict_batch(chunk)
        images_done = reps * size
        rates[size] = {
            "throughput": images_done / (time.perf_counter() - start),
            "cpu_ms_per_image": (time.process_time() - cpu) / images_done * 1000,
        }
    return {"batch1_ms": single, "rates": rates, "model_version": classifier.info.version}


def combine_bare(runs: list[dict]) -> dict:
    """The bare model's figures from measurements taken before and after the servers ran, so that the
    ratios do not rest on one moment of a drifting host: the batch-1 p50 is the median of every call,
    and each batch size's throughput the mean of the measurements, the best of which is the bare model's
    best. Each measurement's own p50 and best stay in the result (``each``) to show the drift."""
    sizes = runs[0]["rates"]
    mean_rate = {size: statistics.fmean(run["rates"][size]["throughput"] for run in runs) for size in sizes}
    best_batch = max(mean_rate, key=mean_rate.__getitem__)
    return {
        "batch1_p50_ms": statistics.median(ms for run in runs for ms in run["batch1_ms"]),
        "best_throughput": mean_rate[best_batch],
        "best_batch": best_batch,
        "best_cpu_ms_per_image": statistics.fmean(
            run["rates"][best_batch]["cpu_ms_per_image"] for run in runs
        ),
        "model_version": runs[0]["model_version"],
        "each": [
            {
                "batch1_p50_ms": statistics.median(run["batch1_ms"]),
                "best_throughput": max(rate["throughput"] for rate in run["rates"].values()),
            }
            for run in runs
        ],
    }


def image_work(images: list[bytes]) -> dict[str, float]:
    """Median milliseconds per image of the case path's image work, in this process, one thread, warm
    (each image once before timing): what a submission cannot do without, whatever serves it."""
    from backend.images.intake import decode_checked, encode_sanitized
    from backend.images.quality import assess
    from backend.inference.preprocess import oriented_to_model_input

    timings: dict[str, list[float]] = {"decode": [], "model_input": [], "encode": [], "quality": []}

    def timed(name: str, step):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        value = step()
        timings[name].append((time.perf_counter() - start) * 1000)
        return value

    for data in images * 2:
        decoded = timed("decode", partial(decode_checked, data, max_bytes=len(data), max_pixels=10**8))
        timed("model_input", partial(oriented_to_model_input, decoded.pixels))
        timed("encode", partial(encode_sanitized, decoded))
        timed("quality", partial(assess, decoded.pixels))
    # the first pass over the images warmed the code up: only the second counts
    return {name: statistics.median(values[len(images) :]) for name, values in timings.items()}


def budget(bare: dict, work: dict[str, float], cores: int) -> dict[str, float]:
    """What the image work and the model alone need, next to what the bars allow.

    At concurrency 1 a submission's critical path is at least: decode, the model's input, then the
    longer of the model (batch 1) and the stored copy's re-encode plus the quality check (they overlap).
    Under load every request costs at least the image work's CPU plus the model's CPU per image at its
    best batch; ``cores`` of them give at most ``cores / that`` requests a second."""
    floor_ms = (
        work["decode"] + work["model_input"] + max(bare["batch1_p50_ms"], work["encode"] + work["quality"])
    )
    floor_cpu_ms = sum(work.values()) + bare["best_cpu_ms_per_image"]
    return {
        "floor_ms": floor_ms,
        "bar_ms": P50_BAR * bare["batch1_p50_ms"],
        "floor_cpu_ms": floor_cpu_ms,
        "floor_throughput_share": cores * 1000 / floor_cpu_ms / bare["best_throughput"],
        "bar_cpu_ms": cores * 1000 / (THROUGHPUT_BAR * bare["best_throughput"]),
    }


def _prepare(settings_env: dict[str, str]) -> dict:
    """Create a clinic, a clinician, a consent version and a consenting patient directly in the database."""
    from backend import migrate
    from backend.config import Settings
    from backend.consent import service as consent
    from backend.consent.schemas import ConsentCreate, DocumentCreate
    from backend.core.actor import SYSTEM, Actor
    from backend.patients.models import Patient
    from backend.patients.schemas import PatientIdentity
    from backend.services import build_services
    from backend.users.models import Role
    from backend.users.service import create_clinic, create_user

    settings = Settings(**{k.removeprefix("DERMALINK_").lower(): v for k, v in settings_env.items()})
    services = build_services(settings)
    migrate.upgrade(services.db.url)
    with services.db.session() as session:
        services.vault.current_kek_id(session)
        clinic = create_clinic(session, SYSTEM, "Benchmark Clinic")
        clinician = create_user(
            session,
            SYSTEM,
            email="bench.clinician@dermalink.local",
            full_name="Bench",
            role=Role.clinician,
            password=PASSWORD,
            password_min_length=12,
            clinic_id=clinic.id,
        )
        admin = create_user(
            session,
            SYSTEM,
            email="bench.admin@dermalink.local",
            full_name="Bench admin",
            role=Role.admin,
            password=PASSWORD,
            password_min_length=12,
        )
        actor = Actor(user=clinician, ctx=SYSTEM.as_actor(clinician.id, clinician.role))
        document = consent.publish(
            session,
            Actor(user=admin, ctx=SYSTEM),
            DocumentCreate(
                version="bench",
                language="en",
                title="Benchmark consent",
                text="Consent text for the benchmark run.",
                scopes=["ai_analysis", "specialist_sharing"],
            ),
        )
        patient: Patient = services.patients.create(
            session,
            actor,
            PatientIdentity(
                full_name="Benchmark Patient", date_of_birth="1970-01-01", medical_record_number="BENCH-1"
            ),
        )
        consent.grant(
            session,
            actor,
            patient,
            ConsentCreate(
                document_id=document.id,
                scopes=["ai_analysis", "specialist_sharing"],
                method="verbal",
                witness_name="Benchmark witness",
            ),
            None,
        )
        session.commit()
        patient_id = str(patient.id)
    services.db.dispose()
    return {"patient_id": patient_id}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _ScratchPostgres:
    """A fresh database on the given PostgreSQL server for one run, dropped afterwards."""

    def __init__(self, server_url: str) -> None:
        from sqlalchemy.engine import make_url

        self.server = make_url(server_url).set(drivername="postgresql")
        self.name = f"dermalink_bench_{uuid.uuid4().hex[:10]}"

    def _admin(self, sql: str) -> None:
        import psycopg

        admin = self.server.set(database="postgres").render_as_string(hide_password=False)
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(sql)

    def __enter__(self) -> str:
        self._admin(f'CREATE DATABASE "{self.name}"')
        return self.server.set(database=self.name).render_as_string(hide_password=False)

    def __exit__(self, *exc: object) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def run(config: ApiBenchConfig, *, log=print) -> dict:  # type: ignore[no-untyped-def]
    from contextlib import nullcontext

    images = [p.read_bytes() for p in sorted(config.images_dir.glob("*.jpg"))[: config.max_images]]
    if not images:
        raise FileNotFoundError(f"no .jpg images in {config.images_dir}")
    before = machine_description()
    log(f"bare model on {len(images)} images ...")
    bare_runs = [bare_model(config, images)]
    work = image_work(images)
    setups = [("SQLite, 1 process", None, 1)]
    if config.workers > 1:
        setups.append((f"SQLite, {config.workers} processes", None, config.workers))
    if config.postgres_url:
        setups.append((f"PostgreSQL, {config.workers} processes", config.postgres_url, config.workers))
    servers = []
    for label, postgres, workers in setups:
        log(f"server: {label}")
        with _ScratchPostgres(postgres) if postgres else nullcontext() as database_url:
            servers.append(_measure_server(config, images, label, database_url, workers, log))
    log("bare model again ...")
    bare_runs.append(bare_model(config, images))
    bare = combine_bare(bare_runs)
    result = {
        "machine": before,
        "load_after": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "bare": bare,
        "image_work": work,
        "budget": budget(bare, work, before["cores"]),
        "servers": servers,
        "levels": servers[0]["levels"],
        "config": {k: str(v) for k, v in asdict(config).items() if k != "postgres_url"},
    }
    result["files"] = [str(p) for p in write_outputs(result, config)]
    return result


@dataclass(frozen=True)
class Server:
    base: str  # http://127.0.0.1:<port>
    pid: int  # also its process group (CPU time of the server and its workers)
    patient_id: str  # a consenting patient of the benchmark's clinician


@contextmanager
def serving(  # type: ignore[no-untyped-def]
    model_repository: Path,
    model_name: str,
    *,
    workers: int = 1,
    database_url: str | None = None,
    checkout: Path | None = None,
):
    """`dermalink serve` on a fresh data directory (embedded defaults, or ``database_url``) with a
    clinician, a consenting patient and a published consent version; stopped afterwards. ``checkout``:
    run that source tree's code (another commit) with this interpreter and its packages."""
    from backend.core.keys import KEY_BYTES

    with tempfile.TemporaryDirectory(prefix="dermalink-bench-") as tmp:
        env = {
            "DERMALINK_ENVIRONMENT": "test",
            "DERMALINK_DATA_DIR": tmp,
            "DERMALINK_MASTER_KEY": base64.b64encode(os.urandom(KEY_BYTES)).decode(),
            "DERMALINK_MODEL_REPOSITORY": str(model_repository),
            "DERMALINK_MODEL_NAME": model_name,
            "DERMALINK_CREATE_DEMO_USERS": "false",
            "DERMALINK_ANALYSIS_WAIT_SECONDS": "30",
            "DERMALINK_METRICS_TOKEN": METRICS_TOKEN,
            "DERMALINK_LOG_LEVEL": "WARNING",
        }
        if database_url:
            env["DERMALINK_DATABASE_URL"] = database_url
        prepared = _prepare(env)
        port = _free_port()
        source = {"PYTHONPATH": str(checkout)} if checkout else {}
        server = subprocess.Popen(
            [sys.executable, "-m", "backend.cli", "serve", "--port", str(port), "--workers", str(workers)],
            env={**os.environ, **env, **source},
            cwd=checkout,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, so its CPU time is told apart from others'
        )
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(base, server)
            yield Server(base, server.pid, prepared["patient_id"])
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=60)


class Submitter:
    """Logs in as the benchmark's clinician and sends `POST /api/v1/cases` with one image.

    Each image's multipart body is encoded once, up front: the load generator shares the server's cores,
    and encoding a body per request would count its CPU against the server."""

    def __init__(self, server: Server, images: list[bytes]) -> None:
        token = httpx.post(
            f"{server.base}/api/v1/auth/login",
            json={"email": "bench.clinician@dermalink.local", "password": PASSWORD},
        ).json()["access_token"]
        metadata = json.dumps({"patient_id": server.patient_id, "age": 50, "sex": "female", "site": "back"})
        self.bodies = []
        for image in images:
            request = httpx.Request(
                "POST",
                f"{server.base}/api/v1/cases",
                data={"metadata": metadata},
                files=[("images", ("lesion.jpg", image, "image/jpeg"))],
            )
            self.bodies.append((request.read(), request.headers["Content-Type"]))
        self.client = httpx.Client(
            base_url=server.base,
            headers={"Authorization": f"Bearer {token}"},
            timeout=120,
            limits=httpx.Limits(max_connections=64),
        )

    def __call__(self, i: int) -> tuple[float, int, bool]:
        """Submit image ``i`` (mod the images); milliseconds, status, whether the answer had the analysis."""
        body, content_type = self.bodies[i % len(self.bodies)]
        start = time.perf_counter()
        response = self.client.post(
            "/api/v1/cases",
            headers={"Idempotency-Key": uuid.uuid4().hex, "Content-Type": content_type},
            content=body,
        )
        elapsed = (time.perf_counter() - start) * 1000
        done = response.status_code == 201 and response.json()["analysis"]["status"] == "done"
        return elapsed, response.status_code, done

    def close(self) -> None:
        self.client.close()


def _measure_server(  # type: ignore[no-untyped-def]
    config: ApiBenchConfig, images: list[bytes], label: str, database_url: str | None, workers: int, log
) -> dict:
    with serving(
        config.model_repository, config.model_name, workers=workers, database_url=database_url
    ) as server:
        levels, rows = _load(server, images, config, log)
    return {"label": label, "levels": [asdict(level) for level in levels], "breakdown": rows}


def _wait_ready(base: str, server: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"dermalink serve exited with {server.returncode}")
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"the API at {base} was not ready within {timeout:.0f} s")


def scrape(client: httpx.Client) -> dict[tuple[str, tuple], float]:
    """The server's metrics as ``{(sample name, sorted labels): value}``."""
    from prometheus_client.parser import text_string_to_metric_families

    response = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    response.raise_for_status()
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


STAGE_LABELS = {
    "authenticate": "authenticate: access token, user, login",
    "checks": "checks: idempotency key, patient, consent, data key",
    "intake": "intake: decode, limits, sanitising re-encode",
    "quality": "image-quality check (downscaled copy)",
    "preprocess": "model input from the same pixels (224×224)",
    "encrypt_store": "encrypt (AES-GCM) and write the blob",
    "queue_wait": "waiting for an inference batch (per batch)",
    "inference": "inference (per batch)",
    "triage": "results, triage, routing rows",
    "insert": "rows and audit events made durable (group commit: waiting included)",
    "group_commit": "  one group's inserts, audit chain and commit (per group)",
}


def scrape_delta(before: dict, after: dict, name: str, labels: tuple = ()) -> float:
    """How much a sample of the server's metrics grew between two scrapes."""
    return after.get((name, labels), 0.0) - before.get((name, labels), 0.0)


def breakdown_rows(before: dict, after: dict, requests: int) -> list[dict]:
    """Per-request milliseconds of each case-path stage, from the difference of two scrapes."""

    def delta(name: str, labels: tuple) -> float:
        return scrape_delta(before, after, name, labels)

    request_labels = (("method", "POST"), ("route", "/api/v1/cases"), ("status", "201"))
    rows = [
        {
            "step": "whole request, as the server measured it",
            "ms": delta("dermalink_http_request_duration_seconds_sum", request_labels) / requests * 1000,
            "count": delta("dermalink_http_request_duration_seconds_count", request_labels),
        }
    ]
    for stage, label in STAGE_LABELS.items():
        labels = (("stage", stage),)
        rows.append(
            {
                "step": f"  {label}",
                "ms": delta("dermalink_case_stage_seconds_sum", labels) / requests * 1000,
                "count": delta("dermalink_case_stage_seconds_count", labels),
            }
        )
    for name, step in GROUPINGS.items():
        mean = mean_group(before, after, name)
        if mean:
            rows.append({"step": step, "ms": float("nan"), "count": mean})
    return rows


GROUPINGS = {
    "dermalink_inference_batch_size": "images per inference batch (mean)",
    "dermalink_commit_group_size": "submissions per group commit (mean)",
}


def mean_group(before: dict, after: dict, histogram: str) -> float:
    """The mean observed value of ``histogram`` between two scrapes (0 when nothing was observed)."""
    count = scrape_delta(before, after, f"{histogram}_count")
    return scrape_delta(before, after, f"{histogram}_sum") / count if count else 0.0


def _load(  # type: ignore[no-untyped-def]
    server: Server, images: list[bytes], config: ApiBenchConfig, log
) -> tuple[list[Level], list[dict]]:
    one = Submitter(server, images)
    for i in range(config.warmup):
        one(i)
    rows: list[dict] = []
    if config.breakdown:
        before = scrape(one.client)
        for i in range(config.breakdown):
            one(i)
        rows = breakdown_rows(before, scrape(one.client), config.breakdown)
    levels = []
    for concurrency in config.concurrency:
        count = max(config.requests_per_level, concurrency * 3)
        before = scrape(one.client)  # outside the CPU measurement, like the scrape after it
        with CpuMeter(server.pid) as meter:
            start = time.perf_counter()
            with ThreadPoolExecutor(max_workers=concurrency) as pool:
                results = list(pool.map(one, range(count)))
            seconds = time.perf_counter() - start
        after = scrape(one.client)
        ok = [r for r in results if r[1] == 201]
        latencies = [r[0] for r in ok]
        statuses: dict[str, int] = {}
        for r in results:
            statuses[str(r[1])] = statuses.get(str(r[1]), 0) + 1
        level = Level(
            concurrency=concurrency,
            requests=count,
            errors=count - len(ok),
            seconds=round(seconds, 2),
            p50_ms=_percentile(latencies, 50),
            p95_ms=_percentile(latencies, 95),
            p99_ms=_percentile(latencies, 99),
            throughput=len(ok) / seconds,
            analysed_in_response=sum(r[2] for r in ok) / max(len(ok), 1),
            other_cores=round(meter.other_cores, 2),
            server_cpu_ms=round(meter.group_used / count * 1000, 1),
            images_per_batch=round(mean_group(before, after, "dermalink_inference_batch_size"), 2),
            submissions_per_commit=round(mean_group(before, after, "dermalink_commit_group_size"), 2),
            statuses=statuses,
        )
        log(
            f"c={concurrency:<3} p50 {level.p50_ms:7.1f} ms  p95 {level.p95_ms:7.1f} ms  "
            f"{level.throughput:6.1f} req/s  errors {level.errors}  others {level.other_cores:.2f} cores"
        )
        levels.append(level)
    one.close()
    return levels, rows


def _verdict(value: float, bar: float, stretch: float, *, lower_is_better: bool) -> str:
    def meets(limit: float) -> bool:
        return value <= limit if lower_is_better else value >= limit

    return "yes, and the stretch" if meets(stretch) else ("yes" if meets(bar) else "no")


def _drift_warning(bare: dict) -> list[str]:
    """A warning when the bare model's two measurements differ by more than `DRIFT_LIMIT`: the host
    changed speed during the run, and ratios to the bare model then say little."""
    drifted = [
        label
        for key, label in (("batch1_p50_ms", "batch-1 p50"), ("best_throughput", "best throughput"))
        if max(m[key] for m in bare["each"]) > DRIFT_LIMIT * min(m[key] for m in bare["each"])
    ]
    if not drifted:
        return []
    warning = (
        f"- **The host drifted during this run**: the bare model's {' and '.join(drifted)} moved by more than "
        f"{DRIFT_LIMIT - 1:.0%} between its measurements before and after the servers, so this run's ratios "
        "say little; run it again."
    )
    return [warning]


def _each(bare: dict, key: str) -> str:
    """One figure of each bare-model measurement, in order: "5.1 and 5.4"."""
    return " and ".join(f"{m[key]:.1f}" for m in bare["each"])


def _budget_lines(result: dict) -> list[str]:
    """The section that sets each server's numbers beside what the image work and the model alone need."""
    bare, work, plan, servers = result["bare"], result["image_work"], result["budget"], result["servers"]
    first = [min(s["levels"], key=lambda lv: lv["concurrency"]) for s in servers]
    top = [max(s["levels"], key=lambda lv: lv["concurrency"]) for s in servers]
    return [
        "",
        "## What the bars leave for the service",
        "",
        (
            "The image work a submission cannot do without, measured in this process (one thread, warm, median "
            f"per image): decoding with every intake check {work['decode']:.2f} ms, the model's input "
            f"{work['model_input']:.2f} ms, the stored copy's re-encode {work['encode']:.2f} ms, the quality "
            f"check {work['quality']:.2f} ms; the bare model's CPU at its best batch "
            f"{bare['best_cpu_ms_per_image']:.1f} core-ms per image. At concurrency 1 the critical path is at "
            "least the decode, the model's input, then the longer of the model (batch 1) and the re-encode "
            "with the quality check; under load each request costs at least all of the image work plus the "
            "model's share of CPU."
        ),
        "",
        "| | image work and model alone | the bar allows | " + " | ".join(s["label"] for s in servers) + " |",
        "|---|---:|---:|" + "---:|" * len(servers),
        (
            f"| p50 at concurrency {first[0]['concurrency']}, ms | {plan['floor_ms']:.1f} | {plan['bar_ms']:.1f} | "
            + " | ".join(f"{lv['p50_ms']:.1f}" for lv in first)
            + " |"
        ),
        (
            f"| server CPU a request at concurrency {top[0]['concurrency']}, core-ms | {plan['floor_cpu_ms']:.1f} "
            f"| {plan['bar_cpu_ms']:.1f} | " + " | ".join(f"{lv['server_cpu_ms']:.1f}" for lv in top) + " |"
        ),
        "",
        (
            "Everything else a request does (HTTP and multipart parsing, authentication, the database, the "
            "audit chain, hand-offs between threads) has to fit in the difference: "
            f"{plan['bar_ms'] - plan['floor_ms']:.1f} ms at concurrency 1, and "
            f"{plan['bar_cpu_ms'] - plan['floor_cpu_ms']:.1f} core-ms of CPU a request under load (less the "
            "load generator's share, which runs on the same cores). With the image work and the model alone, "
            f"these cores would answer at most {plan['floor_throughput_share']:.0%} of the bare model's best "
            "throughput. Warm single-thread timings are a lower bound: in a server the same code runs with "
            "colder caches and beside other threads."
        ),
    ]


def write_outputs(result: dict, config: ApiBenchConfig) -> list[Path]:
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bare, machine_info = result["bare"], result["machine"]
    csv_path, md_path, png_path = (out / f"{config.name}.{ext}" for ext in ("csv", "md", "png"))
    with open(csv_path, "w", newline="") as handle:
        host = machine_columns(machine_info, result["load_after"])
        fields = ["server", *(k for k in result["servers"][0]["levels"][0] if k != "statuses"), *host]
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for server in result["servers"]:
            for level in server["levels"]:
                writer.writerow(
                    {"server": server["label"], **{k: v for k, v in level.items() if k != "statuses"}, **host}
                )
    lines = [
        "# Backend end to end: JPEG uploads through the HTTP API",
        "",
        f"- Command: `{command_line('api')}`",
        f"- Machine: {machine_line(machine_info)}",
        (
            f"- Load average (1, 5, 15 min) {machine_info['loadavg']} before the run, {result['load_after']} "
            "after it. The machine may be shared: the `others` column is how many cores other processes "
            "kept busy during each level (from /proc/stat, minus this benchmark and its server), so a "
            "disturbed level can be told from a slow one."
        ),
        (
            f"- Model {config.model_name} v{bare['model_version']}; each request is `POST /api/v1/cases` with "
            "one real HAM10000 image (600×450 JPEG); the response carries the analysis, so latency = upload → "
            "sanitised → encrypted and stored → analysed → triaged → committed → answered"
        ),
        (
            "- Bare model (in-process ONNX Runtime, same images, measured before and after the servers): "
            f"batch-1 p50 {bare['batch1_p50_ms']:.1f} ms "
            f"({_each(bare, 'batch1_p50_ms')}); best batched throughput "
            f"{bare['best_throughput']:.1f} images/s at batch {bare['best_batch']} "
            f"({_each(bare, 'best_throughput')}: each measurement's best)."
        ),
        *_drift_warning(bare),
        *_budget_lines(result),
    ]
    for server in result["servers"]:
        levels = server["levels"]
        first = min(levels, key=lambda lv: lv["concurrency"])
        top = max(levels, key=lambda lv: lv["concurrency"])
        p50_ratio = first["p50_ms"] / bare["batch1_p50_ms"]
        tput_ratio = top["throughput"] / bare["best_throughput"]
        tput_verdict = _verdict(tput_ratio, THROUGHPUT_BAR, THROUGHPUT_STRETCH, lower_is_better=False)
        lines += [
            "",
            f"## {server['label']}",
            "",
            (
                "| concurrency | requests | errors | p50 ms | p95 ms | p99 ms | req/s "
                "| server CPU, core-ms a request | images a model call | submissions a commit "
                "| analysed in response | others (cores) |"
            ),
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for level in levels:
            lines.append(
                f"| {level['concurrency']} | {level['requests']} | {level['errors']} | {level['p50_ms']:.1f} | "
                f"{level['p95_ms']:.1f} | {level['p99_ms']:.1f} | {level['throughput']:.1f} | "
                f"{level['server_cpu_ms']:.1f} | {level['images_per_batch']:.2f} | "
                f"{level['submissions_per_commit']:.2f} | {level['analysed_in_response']:.0%} | "
                f"{level['other_cores']:.2f} |"
            )
        lines += [
            "",
            "| target (bar; stretch) | reached |",
            "|---|---|",
            (
                f"| p50 at concurrency {first['concurrency']} ≤ {P50_BAR:g}× bare batch-1 p50 (≤ {P50_STRETCH:g}×) | "
                f"{_verdict(p50_ratio, P50_BAR, P50_STRETCH, lower_is_better=True)} ({p50_ratio:.2f}×) |"
            ),
            (
                f"| throughput at concurrency {top['concurrency']} ≥ {THROUGHPUT_BAR:.0%} of bare best "
                f"(≥ {THROUGHPUT_STRETCH:.0%}), errors 0 | "
                f"{tput_verdict if top['errors'] == 0 else 'no'} "
                f"({tput_ratio:.0%}, errors {top['errors']}) |"
            ),
        ]
        if server["breakdown"]:
            lines += [
                "",
                (
                    f"Where one request's time goes ({config.breakdown} sequential requests; read from the "
                    "server's `/metrics`: the difference of two scrapes, divided by the requests; `count` is "
                    "observations):"
                ),
                "",
                "| step | ms per request | count |",
                "|---|---:|---:|",
            ]
            for row in server["breakdown"]:
                ms = "" if row["ms"] != row["ms"] else f"{row['ms']:.2f}"
                lines.append(f"| {row['step']} | {ms} | {row['count']:g} |")
    md_path.write_text("\n".join(lines) + "\n")
    files = [csv_path, md_path]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
        for server in result["servers"]:
            levels = server["levels"]
            ax.plot(
                [lv["throughput"] for lv in levels],
                [lv["p50_ms"] for lv in levels],
                marker="o",
                label=f"{server['label']}: p50",
            )
            ax.plot(
                [lv["throughput"] for lv in levels],
                [lv["p95_ms"] for lv in levels],
                marker="s",
                linestyle="--",
                label=f"{server['label']}: p95",
            )
            for lv in levels:
                ax.annotate(f"c{lv['concurrency']}", (lv["throughput"], lv["p50_ms"]), fontsize=7)
        ax.axvline(bare["best_throughput"], color="black", linestyle=":", label="bare model, best batched")
        ax.axhline(bare["batch1_p50_ms"], color="grey", linestyle=":", label="bare model, batch-1 p50")
        ax.set_xlabel("throughput (requests = images per second)")
        ax.set_ylabel("latency per request (ms)")
        ax.set_yscale("log")
        ax.set_title("DermaLink API end to end vs the bare model")
        machine = textwrap.fill(
            f"{machine_line(machine_info)}; load {machine_info['loadavg']} before, {result['load_after']} after",
            150,
        )
        fig.text(0.01, 0.005, machine, fontsize=5, va="bottom")
        ax.legend(fontsize=7)
        fig.tight_layout(rect=(0, 0.04, 1, 1))  # room for the machine's line
        fig.savefig(png_path)
        plt.close(fig)
        files.append(png_path)
    except ImportError:
        pass
    return files
