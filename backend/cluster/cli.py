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
    cluster.down(keep_run_dir=keep_logs)
    typer.echo(f"cluster stopped; database {cluster.state['database']} dropped")


def register(app: typer.Typer) -> None:
    app.add_typer(cluster_app, name="cluster")
