"""`dermalink triton ...` (set-up, derived CPU repository, serve) and `dermalink bench ...` commands.

Register with ``register(app)`` from `backend.cli`. Other benchmarks (``dermalink bench api``) add
their commands to `bench_app`. tritonclient and the benchmark code are imported inside the commands.
"""

from __future__ import annotations

import shlex
import signal
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

triton_app = typer.Typer(
    help="NVIDIA Triton Inference Server on this CPU: set-up, derived model repository, serve.",
    no_args_is_help=True,
)
bench_app = typer.Typer(
    help="Benchmarks (Triton and in-process inference; the API end to end).", no_args_is_help=True
)

DEFAULT_MODEL = "ham10000_mobilenetv2"


def _root() -> Path:
    from backend.inference.triton_server import REPO_ROOT

    return REPO_ROOT


def _csv_ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError as exc:
        raise typer.BadParameter(f"expected comma-separated integers, got {text!r}") from exc
    if not values or min(values) < 1:
        raise typer.BadParameter(f"expected positive integers, got {text!r}")
    return values


def _source(source: Path | None, standin: bool) -> Path:
    """The exported repository: --source, or the stand-in model written to build/standin_repository."""
    if standin:
        from backend.inference.triton_server import default_build_dir
        from benchmarks.standin import build_repository

        return build_repository(default_build_dir() / "standin_repository")
    return source or _root() / "model_repository"


def _derive(
    source: Path, out: Path | None, model: str | None, instances: int, threads: int, delay_us: int
) -> Path:
    from backend.inference import triton_repo
    from backend.inference.triton_server import default_build_dir

    out = out or default_build_dir() / "triton_repo"
    options = triton_repo.CpuRepoOptions(
        instances=instances, intra_op_threads=threads, max_queue_delay_us=delay_us
    )
    try:
        derived = triton_repo.derive_repository(source, out, [model] if model else None, options)
    except triton_repo.RepositoryError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from exc
    for d in derived:
        typer.echo(f"derived {d} from {source / d.name}")
    return out


def _command_line(ctx: typer.Context) -> str:
    """The command as typed (when run as `dermalink`), for the benchmark report."""
    if Path(sys.argv[0]).name == "dermalink":
        return " ".join(["dermalink", *(shlex.quote(a) for a in sys.argv[1:])])
    return ctx.command_path


@triton_app.command("setup")
def setup(
    venv: Annotated[
        Path | None, typer.Option(help="Triton's virtualenv (default <repo>/.venv-triton).")
    ] = None,
) -> None:
    """Create or update Triton's own virtualenv (pytriton server, numpy<2, onnxruntime, perf_analyzer). Idempotent."""
    from backend.inference.triton_server import TritonSetupError, run_setup

    try:
        run_setup(venv)
    except TritonSetupError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(1) from exc


SourceOption = Annotated[
    Path | None, typer.Option(help="Exported model repository (default <repo>/model_repository).")
]
DerivedOption = Annotated[
    Path | None, typer.Option(help="Derived CPU repository (default build/triton_repo).")
]


@triton_app.command("repo")
def repo(
    source: SourceOption = None,
    out: DerivedOption = None,
    model: str = typer.Option(None, help="Only this model (default: every exported model)."),
    standin: bool = typer.Option(False, help="Use the stand-in ONNX model instead of the exported one."),
    instances: int = typer.Option(1, help="CPU model instances."),
    threads: int = typer.Option(0, help="ONNX Runtime intra-op threads per instance (0: all cores)."),
    max_queue_delay_us: int = typer.Option(0, help="Dynamic batching: longest wait to fill a batch (µs)."),
) -> None:
    """Derive the CPU repository (python backend running model.onnx with ONNX Runtime) from the exported one."""
    _derive(_source(source, standin), out, model, instances, threads, max_queue_delay_us)


@triton_app.command("serve")
def serve(
    source: SourceOption = None,
    out: DerivedOption = None,
    standin: bool = typer.Option(False, help="Serve the stand-in ONNX model instead of the exported one."),
    host: str = typer.Option("127.0.0.1", help="Address Triton binds."),
    http_port: int = typer.Option(8100, help="KServe v2 HTTP port."),
    grpc_port: int = typer.Option(8001, help="KServe v2 gRPC port (DERMALINK_TRITON_URL=host:port)."),
    metrics_port: int = typer.Option(8102, help="Prometheus metrics port."),
    instances: int = typer.Option(1, help="CPU model instances."),
    threads: int = typer.Option(0, help="ONNX Runtime intra-op threads per instance (0: all cores)."),
    max_queue_delay_us: int = typer.Option(0, help="Dynamic batching: longest wait to fill a batch (µs)."),
    model_control: str = typer.Option("none", help="Triton's --model-control-mode (none|explicit|poll)."),
) -> None:
    """Start the real Triton server (nvidia-pytriton's binary) on CPU over the derived repository; Ctrl-C stops it."""
    from backend.inference.triton_server import TritonServer, TritonSetupError, TritonStartError

    derived = _derive(_source(source, standin), out, None, instances, threads, max_queue_delay_us)
    try:
        server = TritonServer(
            derived,
            http_port=http_port,
            grpc_port=grpc_port,
            metrics_port=metrics_port,
            host=host,
            model_control=model_control,
        )
    except TritonSetupError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(1) from exc

    def _terminate(*_: object) -> None:
        raise KeyboardInterrupt  # SIGTERM stops the server like Ctrl-C, also while it is starting

    previous = signal.signal(signal.SIGTERM, _terminate)
    died = False
    try:
        server.start()
        typer.echo(
            f"Triton ready: grpc {server.grpc_url}, http {server.http_url}, metrics {host}:{metrics_port}; "
            f"log {server.log_path}"
        )
        while server.running:
            time.sleep(0.5)
        died = True
    except KeyboardInterrupt:
        pass
    except TritonStartError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(1) from exc
    finally:
        server.stop()
        signal.signal(signal.SIGTERM, previous)
    if died:
        typer.secho(f"tritonserver exited unexpectedly; log {server.log_path}", fg="red", err=True)
        raise typer.Exit(1)


@bench_app.command("triton")
def bench_triton(
    ctx: typer.Context,
    source: SourceOption = None,
    standin: bool = typer.Option(
        False, help="Benchmark the stand-in ONNX model instead of the exported one."
    ),
    model: str = typer.Option(DEFAULT_MODEL, help="Model name."),
    images: Annotated[
        Path | None, typer.Option(help="Lesion images (default $DERMALINK_SHARED/data/ham10000/full_size).")
    ] = None,
    max_images: int = typer.Option(16, help="How many images to use as perf_analyzer input data."),
    protocols: str = typer.Option("grpc,http", help="Comma-separated: grpc, http."),
    batch_sizes: str = typer.Option("1,4,8", help="Comma-separated batch sizes (Triton and in-process)."),
    concurrency: str = typer.Option("1,2,4,8", help="Comma-separated perf_analyzer concurrencies."),
    measurement_interval: int = typer.Option(2000, help="perf_analyzer time window (ms)."),
    stability: int = typer.Option(25, help="perf_analyzer --stability-percentage."),
    max_trials: int = typer.Option(6, help="perf_analyzer --max-trials."),
    onnx_seconds: float = typer.Option(3.0, help="In-process ONNX Runtime measurement per batch size (s)."),
    http_url: str = typer.Option(
        None, help="Use a running Triton's HTTP endpoint (host:port) instead of starting one."
    ),
    grpc_url: str = typer.Option(None, help="Use a running Triton's gRPC endpoint (host:port)."),
    out: Annotated[Path | None, typer.Option(help="Output folder (default <repo>/docs/benchmarks).")] = None,
    name: str = typer.Option("triton_cpu", help="Output file stem: <name>.md, .csv, .png."),
    plot: bool = typer.Option(True, help="Write the PNG plot (needs matplotlib)."),
    note: str = typer.Option("", help="A note for the report (e.g. the GPU card)."),
    setup: bool = typer.Option(True, help="First run the (idempotent) Triton/perf_analyzer set-up."),
    max_other_load: Annotated[
        float | None,
        typer.Option(help="Shared machine: measure only while other processes use fewer cores than this."),
    ] = None,
    quiet_wait: float = typer.Option(120.0, help="With --max-other-load: longest wait for quiet (s)."),
    quiet_retries: int = typer.Option(2, help="With --max-other-load: repeats of a disturbed measurement."),
) -> None:
    """perf_analyzer against Triton (gRPC/HTTP, batch x concurrency sweep) next to in-process ONNX Runtime."""
    from backend.inference.triton_server import TritonSetupError, TritonStartError
    from benchmarks.triton import BenchConfig, run

    protos = tuple(p.strip() for p in protocols.split(",") if p.strip())
    if not protos or set(protos) - {"grpc", "http"}:
        raise typer.BadParameter(f"protocols must be grpc and/or http, got {protocols!r}")
    config = BenchConfig(
        repository=_source(source, standin),
        model=model,
        images_dir=images,
        max_images=max_images,
        protocols=protos,
        batch_sizes=_csv_ints(batch_sizes),
        concurrencies=_csv_ints(concurrency),
        measurement_interval_ms=measurement_interval,
        stability_percent=stability,
        max_trials=max_trials,
        onnx_seconds=onnx_seconds,
        http_url=http_url,
        grpc_url=grpc_url,
        out_dir=out or _root() / "docs" / "benchmarks",
        name=name,
        plot=plot,
        note=note,
        command=_command_line(ctx),
        max_other_load=max_other_load,
        quiet_wait_s=quiet_wait,
        quiet_retries=quiet_retries,
    )
    try:
        if setup:
            from backend.inference.triton_server import run_setup

            run_setup()  # perf_analyzer 2.50.0 and its two libraries (libb64, libcudart), Triton's venv
        result = run(config, log=typer.echo)
    except (TritonSetupError, TritonStartError, FileNotFoundError) as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(1) from exc
    for f in result["files"]:
        typer.echo(f"wrote {f}")


def register(app: typer.Typer) -> None:
    app.add_typer(triton_app, name="triton")
    app.add_typer(bench_app, name="bench")
