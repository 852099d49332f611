"""`dermalink cluster up|down|status` (the topology on loopback) and `dermalink bench cluster`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from backend.cluster.topology import DEFAULT_RUN_DIR

cluster_app = typer.Typer(
    help="The production topology as processes on this machine (loopback only).", no_args_is_help=True
)
RunDir = Annotated[Path, typer.Option(help="Run directory: state.json, secrets, config, data, logs.")]


def _print_status(cluster) -> bool:  # type: ignore[no-untyped-def]
    rows = cluster.status()
    typer.echo(f"{'part':<12} {'pid':>8} {'port':>6}  health")
    for row in rows:
        mark = "ok  " if row["healthy"] else "DOWN"
        typer.echo(
            f"{row['part']:<12} {row['pid'] or '-':>8} {row['port'] or '-':>6}  {mark} {row['detail']}"
        )
    typer.echo(f"load balancer: {cluster.url}   run directory: {cluster.run_dir}")
    return all(row["healthy"] for row in rows)


@cluster_app.command("up")
def up(
    apis: int = typer.Option(2, min=1, help="API processes behind the load balancer."),
    workers: int = typer.Option(2, min=1, help="Analysis workers on Redis."),
    run_dir: RunDir = DEFAULT_RUN_DIR,
    model_repository: Annotated[
        Path | None, typer.Option(help="Exported model repository (default <repo>/model_repository).")
    ] = None,
) -> None:
    """Start PostgreSQL's run database, Redis, SeaweedFS (S3), Triton, migrations, N APIs, M workers,
    HAProxy and Prometheus, each in its own process group; print their status."""
    from backend.cluster.topology import ClusterError, ClusterSpec
    from backend.cluster.topology import up as start

    spec = ClusterSpec(apis=apis, workers=workers, run_dir=run_dir)
    if model_repository:
        spec.model_repository = model_repository
    try:
        cluster = start(spec, log=typer.echo)
    except ClusterError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(1) from exc
    _print_status(cluster)


@cluster_app.command("status")
def status(run_dir: RunDir = DEFAULT_RUN_DIR) -> None:
    """Each part with its PID, port and health. Exit status 1 when any part is unhealthy."""
    from backend.cluster.topology import Cluster, ClusterError

    try:
        cluster = Cluster.load(run_dir)
    except ClusterError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    if not _print_status(cluster):
        raise typer.Exit(1)


@cluster_app.command("down")
def down(
    run_dir: RunDir = DEFAULT_RUN_DIR,
    keep_logs: bool = typer.Option(False, help="Keep the run directory (logs, data) instead of deleting it."),
) -> None:
    """Stop every part (process groups), drop the run's database and delete the run directory."""
    from backend.cluster.topology import Cluster, ClusterError

    try:
        cluster = Cluster.load(run_dir)
    except ClusterError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    cluster.down(keep_run_dir=keep_logs, log=typer.echo)
    typer.echo(f"cluster stopped; database {cluster.state['database']} dropped")


def bench_cluster(
    images: Annotated[
        Path | None, typer.Option(help="JPEGs (default $DERMALINK_SHARED/data/ham10000/full_size).")
    ] = None,
    out: Annotated[Path, typer.Option(help="Where cluster.md and cluster.csv go.")] = Path("docs/benchmarks"),
    clients: int = typer.Option(8, min=1, help="Clinicians submitting back to back."),
    seconds: float = typer.Option(30.0, min=1, help="Measurement per configuration (s)."),
    warmup: float = typer.Option(5.0, min=0, help="Warm-up per configuration (s)."),
    rounds: int = typer.Option(1, min=1, help="Repeat the four configurations (a shared machine drifts)."),
) -> None:
    """Throughput and p50/p95 of the healthy cluster with 1 vs 2 API processes and 1 vs 2 workers."""
    import os
    import sys

    from backend.config import REPO_ROOT
    from benchmarks.cluster import ClusterBenchConfig, run

    shared = Path(os.environ.get("DERMALINK_SHARED", REPO_ROOT.parent / "shared"))
    command = " ".join(["dermalink", "bench", "cluster", *sys.argv[3:]]) if len(sys.argv) > 2 else ""
    config = ClusterBenchConfig(
        images_dir=images or shared / "data" / "ham10000" / "full_size",
        out_dir=out,
        clients=clients,
        seconds=seconds,
        warmup_s=warmup,
        rounds=rounds,
        command=command or "dermalink bench cluster",
    )
    result = run(config, log=typer.echo)
    for path in result["files"]:
        typer.echo(f"wrote {path}")


def register(app: typer.Typer) -> None:
    from backend.triton_cli import bench_app

    app.add_typer(cluster_app, name="cluster")
    bench_app.command("cluster")(bench_cluster)
