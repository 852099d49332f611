"""`dermalink bench api`: real JPEG uploads through the HTTP API at increasing concurrency.

It starts `dermalink serve` in a subprocess on a fresh data directory (SQLite, local encrypted blobs, the
embedded analysis runner and in-process ONNX Runtime: the embedded defaults), registers a clinician, a
consenting patient and a published consent version, then sends `POST /api/v1/cases` submissions of real
HAM10000 images. Each submission waits for its analysis, so its latency is the clinician's wait from
upload to AI answer. In the same run it measures the bare model (`OnnxClassifier`) on the same images:
batch 1 latency and the best batched throughput, so the results are ratios on one machine.
"""

from __future__ import annotations

import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import numpy as np

from backend.bench.triton import machine_description

PASSWORD = "benchmark passphrase 1234"


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
    breakdown: int = 20  # sequential in-process requests timed step by step (0: skip)


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
    statuses: dict = field(default_factory=dict)


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def bare_model(config: ApiBenchConfig, images: list[bytes]) -> dict:
    """Batch-1 latency and the best batched throughput of the bare model on the same images."""
    from backend.inference.onnx import OnnxClassifier
    from backend.inference.preprocess import batch, load_image

    classifier = OnnxClassifier(config.model_repository, config.model_name)
    pixels = batch([load_image(data) for data in images])
    classifier.predict_batch(pixels[:1])  # warm-up
    single = []
    for i in range(min(len(pixels), 30)):
        start = time.perf_counter()
        classifier.predict_batch(pixels[i : i + 1])
        single.append((time.perf_counter() - start) * 1000)
    best, best_batch = 0.0, 1
    for size in (1, 4, 8, 16):
        reps = max(2, 64 // size)
        chunk = np.concatenate([pixels] * (size // len(pixels) + 1))[:size]
        start = time.perf_counter()
        for _ in range(reps):
            classifier.predict_batch(chunk)
        rate = reps * size / (time.perf_counter() - start)
        if rate > best:
            best, best_batch = rate, size
    return {
        "batch1_p50_ms": statistics.median(single),
        "best_throughput": best,
        "best_batch": best_batch,
        "model_version": classifier.info.version,
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
        return {"patient_id": str(patient.id)}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(config: ApiBenchConfig, *, log=print) -> dict:  # type: ignore[no-untyped-def]
    from backend.core.keys import KEY_BYTES

    images = [p.read_bytes() for p in sorted(config.images_dir.glob("*.jpg"))[: config.max_images]]
    if not images:
        raise FileNotFoundError(f"no .jpg images in {config.images_dir}")
    log(f"bare model on {len(images)} images ...")
    bare = bare_model(config, images)
    machine = machine_description()
    with tempfile.TemporaryDirectory(prefix="dermalink-bench-") as tmp:
        env = {
            "DERMALINK_ENVIRONMENT": "test",
            "DERMALINK_DATA_DIR": tmp,
            "DERMALINK_MASTER_KEY": __import__("base64").b64encode(os.urandom(KEY_BYTES)).decode(),
            "DERMALINK_MODEL_REPOSITORY": str(config.model_repository),
            "DERMALINK_MODEL_NAME": config.model_name,
            "DERMALINK_CREATE_DEMO_USERS": "false",
            "DERMALINK_ANALYSIS_WAIT_SECONDS": "30",
        }
        prepared = _prepare(env)
        port = _free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "backend.cli", "serve", "--port", str(port)],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(base, server)
            levels = _load(base, prepared["patient_id"], images, config, log)
        finally:
            server.terminate()
            server.wait(timeout=30)
    result = {
        "machine": machine,
        "bare": bare,
        "levels": [asdict(level) for level in levels],
        "config": {k: str(v) for k, v in asdict(config).items()},
    }
    if config.breakdown:
        log(f"per-step breakdown over {config.breakdown} sequential requests ...")
        result["breakdown"] = breakdown(config, images[0], config.breakdown)
    result["files"] = [str(p) for p in write_outputs(result, config)]
    return result


# The steps of one submission, timed by wrapping these functions (module, attribute path, label).
STEPS = (
    ("backend.cases.service", "sanitize", "intake: decode, limits, re-encode without metadata"),
    ("backend.cases.service", "assess", "image-quality check"),
    ("backend.cases.service", "CaseService.submit", "submission: intake, encrypt, store, commit case + job"),
    ("backend.cases.analysis", "Analyzer.run", "analysis job: decrypt, decode, infer, store, triage, commit"),
    ("backend.cases.analysis", "load_image", "  of which decode + resize for the model"),
    ("backend.inference.onnx", "OnnxClassifier.predict_batch", "  of which inference"),
    ("backend.cases.service", "CaseService.view", "reading the case back for the response"),
    ("sqlmodel", "Session.commit", "all database commits (inside the steps above)"),
)


def breakdown(config: ApiBenchConfig, image: bytes, requests: int) -> list[dict]:
    """Time each step of a submission in-process (FastAPI's TestClient, sequential requests)."""
    import base64
    import importlib
    from collections import defaultdict
    from contextlib import ExitStack
    from unittest import mock

    from fastapi.testclient import TestClient

    from backend.config import Settings
    from backend.main import create_app

    totals: dict[str, float] = defaultdict(float)

    def timed(label: str, function):  # type: ignore[no-untyped-def]
        def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                totals[label] += time.perf_counter() - start

        return wrapper

    with tempfile.TemporaryDirectory(prefix="dermalink-breakdown-") as tmp, ExitStack() as patches:
        env = {
            "DERMALINK_ENVIRONMENT": "test",
            "DERMALINK_DATA_DIR": tmp,
            "DERMALINK_CREATE_DEMO_USERS": "false",
            "DERMALINK_MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
            "DERMALINK_MODEL_REPOSITORY": str(config.model_repository),
            "DERMALINK_MODEL_NAME": config.model_name,
            "DERMALINK_ANALYSIS_WAIT_SECONDS": "30",
        }
        prepared = _prepare(env)
        for module_name, path, label in STEPS:
            owner = importlib.import_module(module_name)
            *parents, attribute = path.split(".")
            for parent in parents:
                owner = getattr(owner, parent)
            patches.enter_context(
                mock.patch.object(owner, attribute, timed(label, getattr(owner, attribute)))
            )
        settings = Settings(**{k.removeprefix("DERMALINK_").lower(): v for k, v in env.items()})
        with TestClient(create_app(settings)) as client:
            token = client.post(
                "/api/v1/auth/login", json={"email": "bench.clinician@dermalink.local", "password": PASSWORD}
            ).json()["access_token"]
            metadata = json.dumps({"patient_id": prepared["patient_id"]})

            def submit() -> None:
                response = client.post(
                    "/api/v1/cases",
                    data={"metadata": metadata},
                    headers={"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex},
                    files=[("images", ("lesion.jpg", image, "image/jpeg"))],
                )
                assert response.status_code == 201, response.text

            for _ in range(3):
                submit()
            totals.clear()
            start = time.perf_counter()
            for _ in range(requests):
                submit()
            whole = time.perf_counter() - start
    rows = [{"step": "whole request through the API (in-process client)", "ms": whole / requests * 1000}]
    rows += [{"step": label, "ms": totals[label] / requests * 1000} for _, _, label in STEPS]
    return rows


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


def _load(base: str, patient_id: str, images: list[bytes], config: ApiBenchConfig, log) -> list[Level]:  # type: ignore[no-untyped-def]
    token = httpx.post(
        f"{base}/api/v1/auth/login", json={"email": "bench.clinician@dermalink.local", "password": PASSWORD}
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    metadata = json.dumps({"patient_id": patient_id, "age": 50, "sex": "female", "site": "back"})
    client = httpx.Client(
        base_url=base, headers=headers, timeout=120, limits=httpx.Limits(max_connections=64)
    )

    def one(i: int) -> tuple[float, int, bool]:
        start = time.perf_counter()
        response = client.post(
            "/api/v1/cases",
            headers={"Idempotency-Key": uuid.uuid4().hex},
            data={"metadata": metadata},
            files=[("images", ("lesion.jpg", images[i % len(images)], "image/jpeg"))],
        )
        elapsed = (time.perf_counter() - start) * 1000
        done = response.status_code == 201 and response.json()["analysis"]["status"] == "done"
        return elapsed, response.status_code, done

    for i in range(config.warmup):
        one(i)
    levels = []
    for concurrency in config.concurrency:
        count = max(config.requests_per_level, concurrency * 3)
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            results = list(pool.map(one, range(count)))
        seconds = time.perf_counter() - start
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
            statuses=statuses,
        )
        log(
            f"c={concurrency:<3} p50 {level.p50_ms:7.1f} ms  p95 {level.p95_ms:7.1f} ms  "
            f"{level.throughput:6.1f} req/s  errors {level.errors}"
        )
        levels.append(level)
    client.close()
    return levels


def write_outputs(result: dict, config: ApiBenchConfig) -> list[Path]:
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    levels, bare, machine = result["levels"], result["bare"], result["machine"]
    csv_path, md_path, png_path = (out / f"{config.name}.{ext}" for ext in ("csv", "md", "png"))
    with open(csv_path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[k for k in levels[0] if k != "statuses"])
        writer.writeheader()
        for level in levels:
            writer.writerow({k: v for k, v in level.items() if k != "statuses"})
    first = next(level for level in levels if level["concurrency"] == min(config.concurrency))
    top = next(level for level in levels if level["concurrency"] == max(config.concurrency))
    p50_ratio = first["p50_ms"] / bare["batch1_p50_ms"]
    tput_ratio = top["throughput"] / bare["best_throughput"]
    lines = [
        "# Backend end to end: JPEG uploads through the HTTP API",
        "",
        f"- Command: `{' '.join(['dermalink', 'bench', 'api', *sys.argv[3:]]) if len(sys.argv) > 2 else 'dermalink bench api'}`",
        (
            f"- Machine: {machine['cpu']}, {machine['cores']} cores, GPU: {machine['gpu']}; "
            f"load average {machine['loadavg']} before the run"
        ),
        (
            f"- Server: one `dermalink serve` process on the embedded defaults (SQLite, local encrypted blobs, "
            f"embedded analysis runner, in-process ONNX Runtime), model {config.model_name} "
            f"v{bare['model_version']} from `{config.model_repository}`"
        ),
        (
            "- Requests: `POST /api/v1/cases` with one real HAM10000 image (600×450 JPEG) each; the response "
            "waits for the analysis, so latency = upload → stored → analysed → answered"
        ),
        "",
        "| concurrency | requests | errors | p50 ms | p95 ms | p99 ms | req/s | analysed in response |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for level in levels:
        lines.append(
            f"| {level['concurrency']} | {level['requests']} | {level['errors']} | {level['p50_ms']:.1f} | "
            f"{level['p95_ms']:.1f} | {level['p99_ms']:.1f} | {level['throughput']:.1f} | "
            f"{level['analysed_in_response']:.0%} |"
        )
    lines += [
        "",
        (
            "Bare model (in-process ONNX Runtime, same images, same run): "
            f"batch-1 p50 {bare['batch1_p50_ms']:.1f} ms; best batched throughput {bare['best_throughput']:.1f} "
            f"images/s (batch {bare['best_batch']})."
        ),
        "",
        "| target | reached |",
        "|---|---|",
        (
            f"| end-to-end p50 at concurrency {first['concurrency']} ≤ 2× bare batch-1 p50 | "
            f"{'yes' if p50_ratio <= 2 else 'no'} ({p50_ratio:.2f}×) |"
        ),
        (
            f"| end-to-end throughput at concurrency {top['concurrency']} ≥ 60% of bare best throughput | "
            f"{'yes' if tput_ratio >= 0.6 else 'no'} ({tput_ratio:.0%}) |"
        ),
    ]
    if result.get("breakdown"):
        lines += [
            "",
            (
                f"Where one request's time goes: {config.breakdown} sequential requests in-process, each step "
                "timed by wrapping the function that does it (ms per request):"
            ),
            "",
            "| step | ms |",
            "|---|---:|",
        ]
        lines += [f"| {row['step']} | {row['ms']:.1f} |" for row in result["breakdown"]]
    md_path.write_text("\n".join(lines) + "\n")
    files = [csv_path, md_path]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
        ax.plot(
            [lv["throughput"] for lv in levels], [lv["p50_ms"] for lv in levels], marker="o", label="API p50"
        )
        ax.plot(
            [lv["throughput"] for lv in levels],
            [lv["p95_ms"] for lv in levels],
            marker="s",
            linestyle="--",
            label="API p95",
        )
        for lv in levels:
            ax.annotate(f"c{lv['concurrency']}", (lv["throughput"], lv["p50_ms"]), fontsize=7)
        ax.axvline(bare["best_throughput"], color="black", linestyle=":", label="bare model, best batched")
        ax.axhline(bare["batch1_p50_ms"], color="grey", linestyle=":", label="bare model, batch-1 p50")
        ax.set_xlabel("throughput (requests = images per second)")
        ax.set_ylabel("latency per request (ms)")
        ax.set_yscale("log")
        ax.set_title("DermaLink API end to end vs the bare model")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(png_path)
        plt.close(fig)
        files.append(png_path)
    except ImportError:
        pass
    return files
