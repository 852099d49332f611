"""`dermalink bench triton`: perf_analyzer against Triton, next to in-process ONNX Runtime, on one machine.

One run measures, on the same model and the same real lesion images (preprocessed with the shared
`backend.inference.preprocess` contract and given to perf_analyzer as ``--input-data`` JSON):

* Triton through NVIDIA's perf_analyzer: gRPC and HTTP, a sweep of batch sizes and concurrencies;
* in-process ONNX Runtime (`OnnxClassifier`, what the backend embeds by default) at the same batch sizes.

It writes ``<name>.md`` (table and ratios), ``<name>.csv`` and ``<name>.png`` (throughput vs latency)
under the output folder (``docs/benchmarks/`` by default). Results are ratios on one machine: compare
numbers only within one run (and say which machine and card produced them).
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import hashlib
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Self

import numpy as np

from backend.inference.preprocess import load_image

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


@dataclass
class BenchConfig:
    repository: Path  # the exported model repository (model.onnx for the in-process baseline)
    model: str = "ham10000_mobilenetv2"
    images_dir: Path | None = None
    max_images: int = 16
    protocols: tuple[str, ...] = ("grpc", "http")
    batch_sizes: tuple[int, ...] = (1, 4, 8)
    concurrencies: tuple[int, ...] = (1, 2, 4, 8)
    measurement_interval_ms: int = 2000
    stability_percent: int = 25
    max_trials: int = 6
    onnx_seconds: float = 3.0  # per batch size, in-process
    http_url: str | None = None  # an already running server; else one is started on the derived repository
    grpc_url: str | None = None
    out_dir: Path = Path("docs/benchmarks")
    name: str = "triton_cpu"
    plot: bool = True
    note: str = ""
    command: str = ""  # the command line, recorded in the report
    # Shared machines: measure only when other processes use less than this many cores (None: always),
    # waiting up to quiet_wait_s for it, and repeat a measurement that got disturbed up to quiet_retries times.
    max_other_load: float | None = None
    quiet_wait_s: float = 120.0
    quiet_retries: int = 2


@dataclass
class Row:
    engine: str  # "triton-grpc", "triton-http", "onnxruntime-inprocess"
    batch: int
    concurrency: int
    throughput: float  # inferences (images) per second
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    avg_ms: float
    server_queue_ms: float | None = None
    server_compute_ms: float | None = None
    stable: bool = True
    other_cores: float | None = None  # CPU cores other processes kept busy meanwhile (shared machine)
    extra: dict = field(default_factory=dict)


class CpuMeter:
    """How many cores *other* processes kept busy during a measurement, on a shared machine.

    Busy time of the whole machine (/proc/stat) minus what we used: this process, our finished children
    (perf_analyzer) and the Triton server's process group (server and python backend stubs). After the
    measurement ``group_used`` is the CPU seconds that process group took meanwhile."""

    def __init__(self, triton_pgid: int | None = None) -> None:
        self.pgid = triton_pgid
        self.tick = os.sysconf("SC_CLK_TCK")

    def _machine_busy(self) -> float:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        return (sum(fields) - fields[3] - fields[4]) / self.tick  # minus idle and iowait

    def group_seconds(self) -> float:
        """CPU seconds (user + system) the process group has used so far."""
        if self.pgid is None:
            return 0.0
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                f = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if len(f) > 12 and f[2] == str(self.pgid):
                total += int(f[11]) + int(f[12])  # utime + stime
        return total / self.tick

    def _ours(self) -> tuple[float, float]:
        """CPU seconds of what we run (this process, finished children, the group), and of the group."""
        import resource

        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        group = self.group_seconds()
        return time.process_time() + children.ru_utime + children.ru_stime + group, group

    def __enter__(self) -> Self:
        self.t0, self.busy0, (self.ours0, self.group0) = time.monotonic(), self._machine_busy(), self._ours()
        return self

    def __exit__(self, *exc) -> None:
        wall = max(time.monotonic() - self.t0, 1e-6)
        ours, group = self._ours()
        others = (self._machine_busy() - self.busy0) - (ours - self.ours0)
        self.other_cores = max(others, 0.0) / wall
        self.group_used = group - self.group0


def shared_dir() -> Path:
    from backend.inference.triton_server import REPO_ROOT

    return Path(os.environ.get("DERMALINK_SHARED", REPO_ROOT.parent / "shared"))


def default_images_dir() -> Path:
    return shared_dir() / "data" / "ham10000" / "full_size"


def load_images(images_dir: Path, limit: int) -> tuple[np.ndarray, list[str]]:
    paths = sorted(p for p in Path(images_dir).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
    if not paths:
        raise FileNotFoundError(f"no images in {images_dir}")
    return np.stack([load_image(p) for p in paths]), [p.name for p in paths]


def write_input_data(images: np.ndarray, input_name: str, path: Path) -> Path:
    """perf_analyzer ``--input-data`` JSON: one entry per image, raw uint8 bytes in base64, shape without batch."""
    data = [
        {
            input_name: {
                "b64": base64.b64encode(np.ascontiguousarray(img).tobytes()).decode(),
                "shape": list(img.shape),
            }
        }
        for img in images
    ]
    path.write_text(json.dumps({"data": data}))
    return path


def _f(row: dict, key: str) -> float | None:
    v = row.get(key)
    return float(v) if v not in (None, "") else None


def run_perf_analyzer(
    perf_analyzer: Path,
    env: dict,
    *,
    model: str,
    url: str,
    protocol: str,
    batch: int,
    concurrency: int,
    input_data: Path,
    interval_ms: int,
    stability: int,
    max_trials: int,
    workdir: Path,
) -> Row:
    csv_path = workdir / f"pa-{protocol}-b{batch}-c{concurrency}.csv"

    def attempt(stab: int) -> subprocess.CompletedProcess:
        cmd = [
            str(perf_analyzer),
            "-m",
            model,
            "-u",
            url,
            "-i",
            protocol,
            "-b",
            str(batch),
            "--concurrency-range",
            f"{concurrency}:{concurrency}",
            "--input-data",
            str(input_data),
            "--measurement-mode",
            "time_windows",
            "--measurement-interval",
            str(interval_ms),
            "--stability-percentage",
            str(stab),
            "--max-trials",
            str(max_trials),
            "-f",
            str(csv_path),
            "--verbose-csv",
        ]
        return subprocess.run(
            cmd, check=False, env=env, capture_output=True, text=True, timeout=120 + 20 * interval_ms / 1000
        )

    stable = True
    proc = attempt(stability)
    if proc.returncode != 0 and "stable" in (proc.stdout + proc.stderr).lower():
        stable = False  # a busy shared machine: accept the last windows, and say so
        proc = attempt(10_000)
    if proc.returncode != 0 or not csv_path.exists():
        raise RuntimeError(
            f"perf_analyzer failed ({protocol}, b{batch}, c{concurrency}):\n{proc.stdout}\n{proc.stderr}"
        )
    with open(csv_path, newline="") as fh:
        (rec,) = list(csv.DictReader(fh))[:1]
    us = 1e-3
    queue = _f(rec, "Server Queue")
    compute = sum(
        _f(rec, k) or 0.0 for k in ("Server Compute Input", "Server Compute Infer", "Server Compute Output")
    )
    return Row(
        engine=f"triton-{protocol}",
        batch=batch,
        concurrency=concurrency,
        throughput=float(rec["Inferences/Second"]),
        p50_ms=_f(rec, "p50 latency") * us,
        p90_ms=_f(rec, "p90 latency") * us,
        p95_ms=_f(rec, "p95 latency") * us,
        p99_ms=_f(rec, "p99 latency") * us,
        avg_ms=_f(rec, "Avg latency") * us,
        server_queue_ms=None if queue is None else queue * us,
        server_compute_ms=compute * us,
        stable=stable,
    )


def bench_onnx(repository: Path, model: str, images: np.ndarray, batch: int, seconds: float) -> Row:
    """Sequential in-process calls (ONNX Runtime uses every core for one call), like one backend worker."""
    from backend.inference.onnx import OnnxClassifier

    clf = OnnxClassifier(repository, model)
    reps = -(-batch // len(images))
    pool = np.concatenate([images] * max(reps, 1) + [images])
    for _ in range(2):  # warm-up
        clf.predict_batch(pool[:batch])
    lat, n, i = [], 0, 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or len(lat) < 5:
        x = pool[i : i + batch]
        i = (i + batch) % len(images)
        t0 = time.perf_counter()
        clf.predict_batch(x)
        lat.append((time.perf_counter() - t0) * 1000)
        n += batch
    total = time.perf_counter() - start
    q = np.percentile(lat, [50, 90, 95, 99])
    return Row(
        engine="onnxruntime-inprocess",
        batch=batch,
        concurrency=1,
        throughput=n / total,
        p50_ms=float(q[0]),
        p90_ms=float(q[1]),
        p95_ms=float(q[2]),
        p99_ms=float(q[3]),
        avg_ms=statistics.fmean(lat),
    )


def model_description(onnx_path: Path) -> dict:
    import onnxruntime as ort

    meta = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).get_modelmeta()
    digest = hashlib.sha256(onnx_path.read_bytes()).hexdigest()[:16]
    kind = (
        "stand-in (benchmarks/standin.py)" if meta.producer_name == "dermalink-standin" else "exported model"
    )
    return {
        "path": str(onnx_path),
        "sha256": digest,
        "producer": meta.producer_name,
        "kind": kind,
        "size_mb": round(onnx_path.stat().st_size / 1e6, 2),
    }


VECTOR_FLAGS = re.compile(r"^(sse4_2|avx|avx2|fma|f16c|avx512\w*|avx_vnni|amx\w*)$")


def machine_line(machine: dict) -> str:
    """The machine as every benchmark report names it (`machine_description`)."""
    return (
        f"{machine['cpu']}, {machine['cores']} cores, vector extensions: {machine['vector_extensions']}; "
        f"GPU: {machine['gpu']}"
    )


def machine_columns(machine: dict, load_after: str) -> dict:
    """The machine and the load as columns of every row of a benchmark's CSV, so the file names them too."""
    return {
        "cpu": machine["cpu"],
        "cores": machine["cores"],
        "vector_extensions": machine["vector_extensions"],
        "load_before": machine["loadavg"],
        "load_after": load_after,
    }


def command_line(bench: str) -> str:
    """The `dermalink bench <bench> ...` command line this process runs, for a report to quote."""
    return (
        " ".join(["dermalink", "bench", bench, *sys.argv[3:]])
        if len(sys.argv) > 2
        else f"dermalink bench {bench}"
    )


def machine_description() -> dict:
    """CPU model, cores, vector extensions and load, for every benchmark file: numbers from different
    machines (or one machine under other load) never compare."""
    cpu, flags = platform.processor() or "", []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = sorted(f for f in line.split(":", 1)[1].split() if VECTOR_FLAGS.match(f))
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "vector_extensions": " ".join(flags) or "unknown",
        "gpu": "none",
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def run(config: BenchConfig, *, log=print) -> dict:
    """Run the whole benchmark; returns ``{"rows": [...], "files": [...], ...}``."""
    from backend.inference import triton_repo
    from backend.inference.onnx import latest_version
    from backend.inference.triton_server import (
        TritonInstall,
        TritonServer,
        TritonStartError,
        default_build_dir,
    )

    install = TritonInstall.find()
    perf_analyzer, pa_env = install.perf_analyzer, install.perf_analyzer_env()
    repository = Path(config.repository)
    onnx_path = repository / config.model / latest_version(repository / config.model) / "model.onnx"
    images, names = load_images(config.images_dir or default_images_dir(), config.max_images)
    log(f"{len(images)} images from {config.images_dir or default_images_dir()}; model {onnx_path}")
    started = dt.datetime.now(dt.UTC)
    machine_before = machine_description()

    def quietly(measure, pgid: int | None = None) -> Row:
        """Run ``measure()`` (returns a Row) under a CpuMeter; with ``max_other_load``, first wait for a quiet
        machine and redo a measurement that other processes disturbed."""
        limit = config.max_other_load
        for attempt in range(1 + (config.quiet_retries if limit is not None else 0)):
            if limit is not None:
                deadline = time.monotonic() + config.quiet_wait_s
                while True:
                    with CpuMeter(pgid) as probe:
                        time.sleep(2.0)
                    if probe.other_cores < limit or time.monotonic() > deadline:
                        break
            with CpuMeter(pgid) as meter:
                row = measure()
            row.other_cores = meter.other_cores
            if attempt:
                row.extra["attempts"] = attempt + 1
            if limit is None or row.other_cores < limit:
                break
        return row

    def onnx_pass(when: str) -> None:
        """In-process ONNX Runtime at every batch size (run twice: before the Triton sweep, with the server
        idle, and after it, so a busy spell of the shared machine is less likely to hit only one side)."""
        for batch in config.batch_sizes:
            row = quietly(
                lambda b=batch: bench_onnx(repository, config.model, images, b, config.onnx_seconds)
            )
            row.extra["when"] = when
            rows.append(row)
            log(
                f"{row.engine:22s} b{batch:<3d} c1   {row.throughput:8.1f} inf/s  p50 {row.p50_ms:7.2f} ms  "
                f"others {row.other_cores:.2f} cores  ({when})"
            )

    rows: list[Row] = []
    onnx_pass("before the Triton sweep")
    server = None
    http_url, grpc_url = config.http_url, config.grpc_url
    if not (http_url or grpc_url):
        derived = default_build_dir() / "triton_repo"
        triton_repo.derive_repository(repository, derived, [config.model])
        server = TritonServer(derived).start()
        http_url, grpc_url = server.http_url, server.grpc_url
        log(f"started tritonserver: http {http_url}, grpc {grpc_url}")
    urls = {"http": http_url, "grpc": grpc_url}
    try:
        from backend.inference.triton import TritonClassifier

        probe_url, probe_proto = (grpc_url, "grpc") if grpc_url else (http_url, "http")
        probe = TritonClassifier(probe_url, config.model, protocol=probe_proto)
        ok, why = probe.ready()
        if not ok:
            raise TritonStartError(f"cannot benchmark: {why}")
        info = probe.info
        with tempfile.TemporaryDirectory(prefix="dermalink-bench-") as tmp:
            work = Path(tmp)
            input_data = write_input_data(images, info.extra["input"], work / "input_data.json")
            for protocol in config.protocols:
                if not urls.get(protocol):
                    log(f"skip {protocol}: no URL")
                    continue
                for batch in config.batch_sizes:
                    for conc in config.concurrencies:
                        row = quietly(
                            lambda p=protocol, b=batch, c=conc: run_perf_analyzer(
                                perf_analyzer,
                                pa_env,
                                model=config.model,
                                url=urls[p],
                                protocol=p,
                                batch=b,
                                concurrency=c,
                                input_data=input_data,
                                interval_ms=config.measurement_interval_ms,
                                stability=config.stability_percent,
                                max_trials=config.max_trials,
                                workdir=work,
                            ),
                            server._proc.pid if server is not None and server._proc else None,
                        )
                        rows.append(row)
                        log(
                            f"{row.engine:22s} b{batch:<3d} c{conc:<3d} {row.throughput:8.1f} inf/s  "
                            f"p50 {row.p50_ms:7.2f} ms  p99 {row.p99_ms:7.2f} ms  others {row.other_cores:.2f} cores"
                            f"{'' if row.stable else '  (unstable)'}"
                        )
    finally:
        if server is not None:
            server.stop()
    onnx_pass("after Triton stopped")

    meta = {
        "started": started.isoformat(timespec="seconds"),
        "machine": machine_before,
        "loadavg_after": machine_description()["loadavg"],
        "model": {**model_description(onnx_path), "served_name": info.name, "served_version": info.version},
        "images": {
            "dir": str(config.images_dir or default_images_dir()),
            "count": len(images),
            "first": names[:3],
        },
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
        "server": "started by the benchmark on the derived CPU repository" if server else f"external: {urls}",
    }
    files = write_outputs(rows, meta, config)
    return {"rows": rows, "files": files, "meta": meta}


QUIET_CORES = 0.25  # measurements during which other processes used less than this count as quiet


def summarize(rows: list[Row]) -> dict:
    """Best throughput per engine and Triton/in-process ratios. On a shared machine only *quiet*
    measurements (other load < QUIET_CORES) are compared when every engine has some; else all are."""
    engines = {r.engine for r in rows}
    quiet = [r for r in rows if r.other_cores is None or r.other_cores < QUIET_CORES]
    use_quiet = all(any(r.engine == e for r in quiet) for e in engines)
    pool = quiet if use_quiet else rows

    def best(engine_prefix: str) -> Row | None:
        cand = [r for r in pool if r.engine.startswith(engine_prefix)]
        return max(cand, key=lambda r: r.throughput) if cand else None

    onnx_best, out = best("onnxruntime"), {}
    onnx_b1 = max(
        (r for r in pool if r.engine.startswith("onnxruntime") and r.batch == 1),
        key=lambda r: r.throughput,
        default=None,
    )
    for engine in sorted(e for e in engines if e.startswith("triton")):
        b = best(engine)
        out[engine] = {
            "best": b,
            "ratio_to_onnx": b.throughput / onnx_best.throughput if onnx_best else None,
            "b1c1": max(
                (r for r in pool if r.engine == engine and r.batch == 1 and r.concurrency == 1),
                key=lambda r: r.throughput,
                default=None,
            ),
        }
    out["onnx_best"], out["onnx_b1"] = onnx_best, onnx_b1
    passes: dict[str, Row] = {}
    for r in pool:
        when = r.extra.get("when")
        if (
            r.engine.startswith("onnxruntime")
            and when
            and (when not in passes or r.throughput > passes[when].throughput)
        ):
            passes[when] = r
    out["onnx_passes"] = passes
    out["basis"] = (
        f"measurements with less than {QUIET_CORES} cores of other load ({len(quiet)} of {len(rows)})"
        if use_quiet and len(quiet) < len(rows)
        else "all measurements"
        if use_quiet
        else "all measurements (not every engine had a quiet one: ratios are under shared load)"
    )
    return out


CSV_FIELDS = [
    "engine",
    "batch",
    "concurrency",
    "throughput",
    "p50_ms",
    "p90_ms",
    "p95_ms",
    "p99_ms",
    "avg_ms",
    "server_queue_ms",
    "server_compute_ms",
    "stable",
    "other_cores",
    "when",
]


def write_outputs(rows: list[Row], meta: dict, config: BenchConfig) -> list[Path]:
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, md_path, png_path = (out / f"{config.name}{ext}" for ext in (".csv", ".md", ".png"))
    with open(csv_path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        w.writeheader()
        for r in rows:
            d = {**asdict(r), "when": r.extra.get("when", "")}
            w.writerow({k: (round(d[k], 3) if isinstance(d[k], float) else d[k]) for k in CSV_FIELDS})
    files = [csv_path]
    plotted = False
    if config.plot:
        plotted = write_plot(rows, png_path, meta)
        if plotted:
            files.append(png_path)
    md_path.write_text(markdown(rows, meta, png_path.name if plotted else None))
    files.append(md_path)
    return files


def _ms(v: float | None) -> str:
    return "" if v is None else f"{v:.2f}"


def markdown(rows: list[Row], meta: dict, png: str | None) -> str:
    s = summarize(rows)
    m, cfg = meta["machine"], meta["config"]
    lines = [
        f"# Triton vs in-process ONNX Runtime ({meta['started']})",
        "",
        (
            f"- Machine: {m['cpu']}, {m['cores']} cores, vector extensions: {m['vector_extensions']}, GPU: "
            f"{m['gpu']}; load average {m['loadavg']} before, "
            f"{meta['loadavg_after']} after (shared machine: read ratios, not absolutes)."
        ),
        (
            f"- Model: `{meta['model']['served_name']}` version {meta['model']['served_version']}, "
            f"{meta['model']['kind']}, {meta['model']['size_mb']} MB, sha256 {meta['model']['sha256']}."
        ),
        (
            f"- Input: {meta['images']['count']} real lesion images from `{meta['images']['dir']}`, preprocessed with "
            "`backend.inference.preprocess.load_image` (uint8 224x224x3), given to perf_analyzer as `--input-data` JSON."
        ),
        (
            f"- Triton: {meta['server']}; python backend running the same model.onnx with ONNX Runtime, dynamic "
            "batching, 1 CPU instance. perf_analyzer 2.50.0 (`tritonclient[all]`), time windows of "
            f"{cfg['measurement_interval_ms']} ms, stability {cfg['stability_percent']}%."
        ),
        f"- In-process: `OnnxClassifier` called sequentially for {cfg['onnx_seconds']} s per batch size.",
    ]
    if cfg.get("max_other_load") is not None:
        lines.append(
            f"- Shared machine: each measurement first waited (up to {cfg['quiet_wait_s']:.0f} s) for other "
            f"processes to use fewer than {cfg['max_other_load']} cores, and was repeated (up to "
            f"{cfg['quiet_retries']} times) when they did not; the *other load* column says what each got."
        )
    if cfg.get("command"):
        lines.append(f"- Command: `{cfg['command']}`")
    if cfg.get("note"):
        lines.append(f"- Note: {cfg['note']}")
    lines += ["", "## Summary", "", f"Compared over {s['basis']}.", ""]
    ob = s["onnx_best"]
    if ob:
        lines.append(
            f"- In-process ONNX Runtime best: {ob.throughput:.1f} images/s (batch {ob.batch}); batch-1 p50 "
            f"{s['onnx_b1'].p50_ms:.2f} ms."
            if s["onnx_b1"]
            else f"- In-process best {ob.throughput:.1f}/s"
        )
    for engine, v in s.items():
        if not engine.startswith("triton"):
            continue
        b, ratio, b1 = v["best"], v["ratio_to_onnx"], v["b1c1"]
        lines.append(
            f"- {engine}: best {b.throughput:.1f} images/s (batch {b.batch}, concurrency {b.concurrency})"
            + (
                f" = **{ratio:.0%} of in-process ONNX Runtime's best** (target >= 80%)"
                if ratio is not None
                else ""
            )
            + (f"; batch 1, concurrency 1: p50 {b1.p50_ms:.2f} ms" if b1 else "")
            + "."
        )
        if len(s["onnx_passes"]) > 1:
            lines.append(
                "  Against each in-process pass separately (the machine's speed drifts between them): "
                + ", ".join(
                    f"{b.throughput / r.throughput:.0%} of the pass {when} ({r.throughput:.1f}/s)"
                    for when, r in s["onnx_passes"].items()
                )
                + "."
            )
    lines += [
        "",
        "## All measurements",
        "",
        (
            "| engine | batch | concurrency | images/s | p50 ms | p90 ms | p95 ms | p99 ms | server queue ms "
            "| server compute ms | stable | other load (cores) |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]

    def name(r: Row) -> str:
        return f"{r.engine} ({r.extra['when']})" if r.extra.get("when") else r.engine

    for r in rows:
        lines.append(
            f"| {name(r)} | {r.batch} | {r.concurrency} | {r.throughput:.1f} | {r.p50_ms:.2f} | {r.p90_ms:.2f} | "
            f"{r.p95_ms:.2f} | {r.p99_ms:.2f} | {_ms(r.server_queue_ms)} | {_ms(r.server_compute_ms)} | "
            f"{'yes' if r.stable else 'no'} | {_ms(r.other_cores)} |"
        )
    if png:
        lines += ["", f"![throughput vs latency]({png})"]
    lines += [
        "",
        (
            "Latencies are per request (a request carries `batch` images); images/s counts images. "
            "*Other load* is how many CPU cores processes outside this benchmark kept busy during that "
            "measurement (machine busy time minus the benchmark's own processes): on a shared 2-core machine, "
            "compare rows with low other load."
            + (
                ""
                if meta["server"].startswith("started")
                else " The Triton server was external here, so its own CPU counts as other load too."
            )
        ),
        "",
    ]
    return "\n".join(lines)


def write_plot(rows: list[Row], path: Path, meta: dict) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[dev]'): no plot written")
        return False
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    series: dict[tuple[str, int], list[Row]] = {}
    for r in rows:
        series.setdefault((r.engine, r.batch), []).append(r)
    for (engine, batch), rs in sorted(series.items()):
        if engine.startswith("onnxruntime"):
            continue
        rs = sorted(rs, key=lambda r: r.concurrency)
        ax.plot(
            [r.throughput for r in rs],
            [r.p50_ms for r in rs],
            marker="o" if engine.endswith("grpc") else "s",
            linestyle="-" if engine.endswith("grpc") else "--",
            label=f"{engine} b{batch}",
        )
        for r in rs:
            ax.annotate(f"c{r.concurrency}", (r.throughput, r.p50_ms), fontsize=6, alpha=0.7)
    onnx = sorted((r for r in rows if r.engine.startswith("onnxruntime")), key=lambda r: r.batch)
    if onnx:
        ax.plot(
            [r.throughput for r in onnx],
            [r.p50_ms for r in onnx],
            marker="*",
            markersize=10,
            color="black",
            linestyle=":",
            label="in-process ONNX Runtime (b1..)",
        )
        for r in onnx:
            ax.annotate(f"b{r.batch}", (r.throughput, r.p50_ms), fontsize=7)
    lat = [r.p50_ms for r in rows if r.p50_ms > 0]
    if lat and max(lat) / min(lat) > 30:
        ax.set_yscale("log")
    ax.set_xlabel("throughput (images/s)")
    ax.set_ylabel("p50 latency per request (ms)")
    ax.set_title(
        f"{meta['model']['served_name']} ({meta['model']['kind']}) on {meta['machine']['cores']}-core CPU",
        fontsize=9,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True
