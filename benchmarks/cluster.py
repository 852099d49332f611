"""`dermalink bench cluster`: the healthy cluster's throughput and latency with 1 or 2 API processes and
1 or 2 workers.

One cluster is started (2 APIs, 2 workers); each configuration stops or starts the second API process
and the second worker (HAProxy's health checks take a stopped API out of rotation; the benchmark waits
until HAProxy's own statistics agree). In each configuration, ``clients`` clinicians submit real HAM10000
images back to back (closed loop) for ``seconds``, after a warm-up. Latency is a clinician's wait from
upload to answer; the answer carries the AI result when the analysis finished within
``DERMALINK_ANALYSIS_WAIT_SECONDS``, so workers are on the measured path.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from backend.cluster.load import LoadGenerator, load_images, prepare
from backend.cluster.topology import Cluster, ClusterSpec, up
from benchmarks.triton import machine_description

CONFIGS = ((1, 1), (2, 1), (1, 2), (2, 2))


@dataclass(frozen=True)
class ClusterBenchConfig:
    images_dir: Path
    out_dir: Path
    clients: int = 8
    seconds: float = 30.0
    warmup_s: float = 5.0
    rounds: int = 1
    name: str = "cluster"
    command: str = "dermalink bench cluster"


@dataclass
class Row:
    round: int
    apis: int
    workers: int
    clients: int
    submissions: int
    failed_attempts: int
    failures: str  # what the failed attempts got (all were retried with the same Idempotency-Key)
    seconds: float
    throughput: float
    p50_ms: float
    p95_ms: float
    analysed_in_response: float
    loadavg_before: str
    loadavg_after: str


def _loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _lb_servers_up(cluster: Cluster) -> set[str]:
    """The API servers HAProxy itself currently routes to (its CSV statistics)."""
    url = f"http://127.0.0.1:{cluster.parts['lb'].ports['stats']}/stats;csv"
    with urllib.request.urlopen(url, timeout=5) as response:
        rows = csv.DictReader(io.StringIO(response.read().decode().lstrip("# ")))
        return {
            r["svname"]
            for r in rows
            if r["pxname"] == "dermalink_api"
            and r["svname"] not in ("FRONTEND", "BACKEND")
            and r["status"].startswith("UP")
        }


def _wait_lb(cluster: Cluster, want: set[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while _lb_servers_up(cluster) != want:
        if time.monotonic() > deadline:
            raise TimeoutError(f"HAProxy did not settle on {sorted(want)}")
        time.sleep(0.25)


def _configure(cluster: Cluster, apis: int, workers: int) -> None:
    for kind, count in (("api", apis), ("worker", workers)):
        for part in cluster.named(kind):
            index = int(part.name.rsplit("-", 1)[1])
            if index <= count and not cluster.running(part.name):
                cluster.start_part(part.name)
                if kind == "api":
                    cluster.wait_healthy(part.name, 120)
            elif index > count and cluster.running(part.name):
                cluster.stop_part(part.name)
    _wait_lb(cluster, {f"api-{i}" for i in range(1, apis + 1)})


def _measure(
    cluster: Cluster, clinicians, images, config: ClusterBenchConfig, rnd: int, apis: int, workers: int
) -> Row:  # type: ignore[no-untyped-def]
    before = _loadavg()
    warm = LoadGenerator(cluster.url, clinicians, images, rate=None, retry_deadline_s=60).start()
    time.sleep(config.warmup_s)
    warm.stop()
    load = LoadGenerator(cluster.url, clinicians, images, rate=None, retry_deadline_s=60)
    start = time.monotonic()
    load.start()
    time.sleep(config.seconds)
    load.stop()
    seconds = time.monotonic() - start
    done = [s for s in load.submissions if s.ok]
    summary = load.latency_summary()
    phases = load.attempts_by_phase()
    return Row(
        round=rnd,
        apis=apis,
        workers=workers,
        clients=len(clinicians),
        submissions=len(done),
        failed_attempts=sum(int(p["failed"]) for p in phases.values()),
        failures=" ".join(f"{k}×{n}" for p in phases.values() for k, n in sorted(p["kinds"].items())),
        seconds=round(seconds, 1),
        throughput=round(len(done) / seconds, 2),
        p50_ms=round(summary["p50_ms"], 1),
        p95_ms=round(summary["p95_ms"], 1),
        analysed_in_response=round(sum(s.analysed for s in done) / max(len(done), 1), 3),
        loadavg_before=before,
        loadavg_after=_loadavg(),
    )


def run(config: ClusterBenchConfig, *, log=print) -> dict:  # type: ignore[no-untyped-def]
    images = load_images(config.images_dir)
    started_at = dt.datetime.now(dt.UTC)
    host = machine_description()
    log(f"machine: {host}")
    with tempfile.TemporaryDirectory(prefix="dermalink-bench-cluster-") as tmp:
        cluster = up(ClusterSpec(apis=2, workers=2, run_dir=Path(tmp) / "run"), log=log)
        try:
            clinicians = prepare(cluster.env, config.clients, prefix="bench")
            rows = []
            for rnd in range(1, config.rounds + 1):
                for apis, workers in CONFIGS:
                    _configure(cluster, apis, workers)
                    row = _measure(cluster, clinicians, images, config, rnd, apis, workers)
                    log(
                        f"round {rnd}: {apis} API, {workers} worker(s): {row.throughput:.2f} submissions/s, "
                        f"p50 {row.p50_ms:.0f} ms, p95 {row.p95_ms:.0f} ms, load {row.loadavg_after}"
                    )
                    rows.append(row)
        finally:
            cluster.down()
    result = {"machine": host, "rows": [asdict(r) for r in rows], "started_at": started_at.isoformat()}
    result["files"] = [str(p) for p in write_outputs(result, config)]
    return result


def write_outputs(result: dict, config: ClusterBenchConfig) -> list[Path]:
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows, host = result["rows"], result["machine"]
    csv_path, md_path = out / f"{config.name}.csv", out / f"{config.name}.md"
    with open(csv_path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    def mean(apis: int, workers: int) -> float:
        values = [r["throughput"] for r in rows if r["apis"] == apis and r["workers"] == workers]
        return sum(values) / len(values)

    lines = [
        "# The cluster on one machine: 1 vs 2 API processes, 1 vs 2 workers",
        "",
        f"- Command: `{config.command}`",
        f"- When: {result['started_at'][:16].replace('T', ' ')} UTC",
        (
            f"- Machine: {host['cpu']}, {host['cores']} cores, vector extensions: {host['vector_extensions']}; no GPU. "
            f"Load average before the run: {host['loadavg']}. The machine is **shared** with other work "
            "(several sessions' tests and builds run at the same time), so absolute numbers move with their "
            "load: the load averages of each measurement are in the table; compare rows of one run only."
        ),
        (
            "- Topology (`dermalink cluster up`): PostgreSQL (a database for the run), Redis, SeaweedFS (S3, "
            "blobs encrypted before they leave the API), the real Triton server (CPU, python backend running "
            "model.onnx with ONNX Runtime), N × `dermalink serve` behind HAProxy (health checks on /readyz), "
            "M × `dermalink worker`, Prometheus; production settings."
        ),
        (
            f"- Load: {config.clients} clinicians submitting one real HAM10000 JPEG each, back to back (closed "
            f"loop), {config.seconds:.0f} s per configuration after {config.warmup_s:.0f} s of warm-up; "
            "latency = upload to answer (the answer carries the AI result when the analysis finished within "
            "5 s)."
        ),
        "",
        (
            "| round | APIs | workers | submissions | submissions/s | p50 ms | p95 ms | analysed in response "
            "| failed attempts (what) | load avg before | load avg after |"
        ),
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['round']} | {r['apis']} | {r['workers']} | {r['submissions']} | {r['throughput']:.2f} | "
            f"{r['p50_ms']:.0f} | {r['p95_ms']:.0f} | {r['analysed_in_response']:.0%} | "
            f"{r['failed_attempts']} {('(' + r['failures'] + ')') if r.get('failures') else ''} | "
            f"{r['loadavg_before']} | {r['loadavg_after']} |"
        )
    base = mean(1, 1)
    spread = max(
        max(r["throughput"] for r in rows if (r["apis"], r["workers"]) == c)
        / min(r["throughput"] for r in rows if (r["apis"], r["workers"]) == c)
        for c in CONFIGS
    )
    lines += [
        "",
        f"Mean throughput over the {config.rounds} round(s), relative to 1 API + 1 worker: "
        + ", ".join(
            f"{a} API{'s' if a > 1 else ''} + {w} worker{'s' if w > 1 else ''}: {mean(a, w) / base:.2f}×"
            for a, w in CONFIGS
        )
        + f". The same configuration differed by up to {spread:.1f}× between rounds: that is the shared "
        "machine's noise, larger than some of the differences.",
        "",
        (
            "Reading the numbers: each submission waits for its analysis (up to 5 s), so a submission's latency "
            "is intake + encryption + the S3 write + the queue wait + a worker's analysis (decrypt, decode, "
            "resize, one Triton call, commit). A worker runs one analysis at a time, so the number of workers "
            "bounds how many analyses run at once. On a "
            "2-core machine every process (APIs, workers, Triton, PostgreSQL, SeaweedFS, HAProxy, the load "
            "generator, and other sessions' work) shares the same two cores, so these ratios understate what "
            "the same processes gain on separate machines."
        ),
        "",
    ]
    md_path.write_text("\n".join(lines))
    return [md_path, csv_path]
