"""The backend's CLI commands, registered on the main `dermalink` app."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from backend.users.models import Role

db_app = typer.Typer(help="Database schema migrations.", no_args_is_help=True)
admin_app = typer.Typer(help="Account administration.", no_args_is_help=True)
audit_app = typer.Typer(help="The tamper-evident audit trail.", no_args_is_help=True)
keys_app = typer.Typer(help="Encryption keys: rotation of the key-encryption key.", no_args_is_help=True)
research_app = typer.Typer(
    help="De-identified data for research (only with the patient's consent).", no_args_is_help=True
)


def _context():  # type: ignore[no-untyped-def]
    """Settings, keys and database, as the server would build them."""
    from backend.config import get_settings
    from backend.core.keys import Keyring, load_master_key
    from backend.db import Database

    settings = get_settings()
    settings.check_production()
    keyring = Keyring(load_master_key(settings))
    return settings, keyring, Database(str(settings.database_url), audit_key=keyring.audit)


def _checkpoints(settings, keyring):  # type: ignore[no-untyped-def]
    """The audit checkpoints in the configured blob store."""
    from backend.audit.anchor import CheckpointStore
    from backend.services import make_anchor_store

    return CheckpointStore(make_anchor_store(settings), keyring.audit, lock_days=settings.anchor_lock_days)


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
    app.add_typer(admin_app, name="admin")
    app.add_typer(audit_app, name="audit")
    app.add_typer(keys_app, name="keys")
    app.add_typer(research_app, name="research")
    _register_bench_api()

    @app.command()
    def worker(
        burst: bool = typer.Option(False, help="Process what is queued, then exit."),
        sweep_seconds: float = typer.Option(
            30.0, help="How often to re-enqueue due jobs Redis may have lost."
        ),
    ) -> None:
        """Run analysis jobs from Redis (DERMALINK_QUEUE=redis). Start as many as the load needs."""
        from backend.cases.worker import run_worker
        from backend.config import get_settings

        settings = get_settings()
        typer.echo(f"dermalink worker: queue at {settings.redis_url}, model {settings.model_name}")
        run_worker(settings.redis_url, sweep_seconds=sweep_seconds, burst=burst)

    @app.command()
    def serve(
        host: str = typer.Option("127.0.0.1", help="Address to bind."),
        port: int = typer.Option(8000, help="Port to bind."),
        workers: int = typer.Option(
            1,
            min=1,
            help="Server processes, each listening on a socket of its own on the port, so that connections "
            "are spread over them. With SQLite they take turns to write (a file lock beside the database); "
            "PostgreSQL lets them write at once.",
        ),
        reload: bool = typer.Option(False, help="Reload on code changes (development)."),
    ) -> None:
        """Run the API and the web app (at /) with uvicorn on the configured database."""
        import os
        import shutil
        import tempfile

        import uvicorn

        from backend.config import get_settings

        metrics_dir = None
        if workers > 1:
            _prepare_for_workers()
            # The processes must not race each other to migrate the schema or create the first key.
            os.environ["DERMALINK_AUTO_MIGRATE"] = "false"
            # Each process writes its metrics here; /metrics, answered by any of them, adds them up.
            if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
                metrics_dir = tempfile.mkdtemp(prefix="dermalink-metrics-")
                os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
            if get_settings().onnx_threads == 0:
                from backend.inference.factory import model_threads

                # Each process's model computes on its share of the cores, not on all of them.
                os.environ["DERMALINK_ONNX_THREADS"] = str(model_threads(workers))
        options = {
            "access_log": False,  # the app logs each request itself, with its request id
            "log_level": get_settings().log_level.lower(),
            "server_header": False,  # no "server: uvicorn" banner
            # The app believes X-Forwarded-* only from DERMALINK_TRUSTED_PROXIES (backend.main), not from
            # uvicorn's own default of trusting 127.0.0.1.
            "proxy_headers": False,
            # h11 bounds what it buffers for an incomplete request head (httptools buffers headers of any
            # size); the app itself answers 431 above DERMALINK_MAX_HEADER_BYTES.
            "http": "h11",
            "h11_max_incomplete_event_size": 2 * get_settings().max_header_bytes,
        }
        try:
            if workers > 1 and not reload:
                # A listening socket per process, so that the kernel spreads connections over them
                # (backend/processes.py says why uvicorn's own --workers does not).
                from backend.processes import Supervisor

                try:
                    supervisor = Supervisor("backend.main:create_app", host, port, workers, options)
                except OSError as exc:
                    typer.echo(f"cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
                    raise typer.Exit(1) from exc
                raise typer.Exit(supervisor.run())
            uvicorn.run(
                "backend.main:create_app", factory=True, host=host, port=port, reload=reload, **options
            )
        finally:
            if metrics_dir:
                shutil.rmtree(metrics_dir, ignore_errors=True)


def _prepare_for_workers() -> None:
    """What every server process would otherwise do at start-up, done once before they start."""
    from backend import migrate
    from backend.config import get_settings
    from backend.services import build_services

    settings = get_settings()
    services = build_services(settings)
    if settings.auto_migrate:
        migrate.upgrade(services.db.url)
    with services.db.session() as session:
        services.vault.current_kek_id(session)
        session.commit()
    services.db.dispose()


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Apply migrations up to REVISION (run once per deployment, before starting replicas)."""
    from backend import migrate

    _settings, _keys, db = _context()
    migrate.upgrade(db.url, revision)
    typer.echo(f"database at revision {revision}")


@admin_app.command("create-user")
def create_user(
    email: str = typer.Option(..., help="Login e-mail."),
    full_name: str = typer.Option(..., help="Display name."),
    role: Role = typer.Option(..., help="clinician, dermatologist or admin."),
    password: str = typer.Option(
        ..., prompt=True, hide_input=True, confirmation_prompt=True, help="Prompted for when omitted."
    ),
    clinic: str | None = typer.Option(None, help="Clinic name (clinicians); created if it does not exist."),
) -> None:
    """Create an account (the way to make the first admin). Admins then enrol TOTP on first login."""
    from backend import migrate
    from backend.core.actor import AuditContext
    from backend.core.errors import DermaLinkError

    settings, _keys, db = _context()
    if settings.auto_migrate:
        migrate.upgrade(db.url)
    with db.session() as session:
        try:
            from sqlmodel import select

            from backend.users.models import Clinic
            from backend.users.service import create_clinic
            from backend.users.service import create_user as create

            ctx = AuditContext(actor_role="cli")
            clinic_id = None
            if clinic:
                found = session.exec(select(Clinic).where(Clinic.name == clinic)).first()
                clinic_id = (found or create_clinic(session, ctx, clinic)).id
            user = create(
                session,
                ctx,
                email=email,
                full_name=full_name,
                role=role,
                password=password,
                password_min_length=settings.password_min_length,
                clinic_id=clinic_id,
            )
            session.commit()
        except DermaLinkError as exc:
            typer.echo(f"error: {exc.detail}", err=True)
            raise typer.Exit(2) from exc
    typer.echo(f"created {user.role} {user.email} ({user.id})")


@audit_app.command("verify")
def audit_verify() -> None:
    """Check the audit hash chain, its authenticated head and the checkpoints kept in the blob store;
    lists each modified, inserted, deleted, reordered or truncated event.

    Exit status 0 when the chain is intact, 1 when tampering was found.
    """
    from backend.audit.verify import verify_chain

    settings, keyring, db = _context()
    scan = _checkpoints(settings, keyring).scan()
    with db.session() as session:
        result = verify_chain(session, db.audit_key, scan)
    for finding in result.findings:
        typer.echo(f"{finding.kind:<10} seq {finding.seq:<8} {finding.message}")
    report = result.checkpoint
    if report is not None and report.newest_seq is not None:
        typer.echo(
            f"newest checkpoint: event {report.newest_seq} at {report.newest_written_at} "
            f"({report.checkpoints} in all); events up to it "
            + ("all present" if report.events_present else "NOT all present")
        )
    else:
        typer.echo("no checkpoint outside the database yet")
    if result.ok:
        typer.echo(f"audit chain intact: {result.events} events verified")
    else:
        typer.echo(
            f"audit chain BROKEN: {len(result.findings)} finding(s) in {result.events} events", err=True
        )
        sys.exit(1)


@audit_app.command("checkpoint")
def audit_checkpoint() -> None:
    """Write a signed checkpoint of the chain head to the blob store now (the server also writes them
    periodically and at shutdown; run this from cron where no server runs)."""
    settings, keyring, db = _context()
    with db.session() as session:
        written = _checkpoints(settings, keyring).checkpoint_now(session)
    if written is None:
        typer.echo("nothing to anchor (empty trail) or the head failed authentication: run audit verify")
        raise typer.Exit(1)
    typer.echo(f"checkpoint of event {written.seq} written to {written.key}")


@keys_app.command("rotate")
def keys_rotate(
    batch_size: int = typer.Option(200, min=1, max=10_000, help="Data keys re-wrapped per committed batch."),
    new: bool = typer.Option(False, "--new", help="Start a new rotation even if one is unfinished."),
) -> None:
    """Introduce a new key-encryption key and re-wrap every patient's data key with it.

    Safe while the server runs; if interrupted, run it again and it resumes where it stopped.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from backend.audit.service import record
    from backend.core.actor import AuditContext
    from backend.crypto.envelope import KeyProvider, Vault

    _settings, keyring, db = _context()
    vault = Vault(KeyProvider(keyring.key_encryption_root))
    with Progress(
        TextColumn("re-wrapping data keys"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()
    ) as bar:
        task = bar.add_task("rewrap", total=None)

        def on_batch(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        result = vault.rotate(db.session, batch_size=batch_size, force_new=new, on_batch=on_batch)
    with db.session() as session:
        record(
            session,
            AuditContext(actor_role="cli"),
            "keys.rotate",
            resource_type="key_encryption_key",
            resource_id=result.kek_id,
            detail={"rewrapped": result.rewrapped, "remaining": result.remaining},
        )
        session.commit()
    typer.echo(
        f"key-encryption key {result.kek_id} is current; {result.rewrapped} data keys re-wrapped, "
        f"{result.remaining} remaining"
    )
    if result.remaining:
        raise typer.Exit(1)


@admin_app.command("resume-erasures")
def resume_erasures() -> None:
    """Finish patient erasures that a crash or an unavailable blob store interrupted, and re-apply the
    erasure ledger (erasures a restored database backup no longer knows about)."""
    from backend.crypto.envelope import KeyProvider, Vault
    from backend.patients.erasure import ErasureLedger, ErasureService
    from backend.services import make_anchor_store
    from backend.storage import make_blob_store

    settings, keyring, db = _context()
    service = ErasureService(
        Vault(KeyProvider(keyring.key_encryption_root)),
        make_blob_store(settings.blob_store_url, settings.data_dir / "blobs"),
        ErasureLedger(
            make_anchor_store(settings), keyring.erasure_ledger, lock_days=settings.anchor_lock_days
        ),
    )
    reapplied = service.reapply_ledger(db.session)
    typer.echo(f"{reapplied} erasure(s) re-applied from the ledger")
    typer.echo(f"{service.resume_pending(db.session)} erasure(s) completed")


@admin_app.command("sweep-blobs")
def sweep_blobs(
    grace_hours: float = typer.Option(
        None, min=0.01, help="Spare blobs younger than this (default: DERMALINK_ORPHAN_BLOB_GRACE_HOURS)."
    ),
) -> None:
    """Delete encrypted blobs that no database row references (their commit never happened), once they
    are older than the grace period. Safe while the server runs: a submission in flight is younger."""
    from datetime import timedelta

    from backend.orphans import sweep_orphans
    from backend.storage import make_blob_store

    settings, _keyring, db = _context()
    blobs = make_blob_store(settings.blob_store_url, settings.data_dir / "blobs")
    hours = grace_hours if grace_hours is not None else settings.orphan_blob_grace_hours
    result = sweep_orphans(blobs, db.session, grace=timedelta(hours=hours))
    typer.echo(
        f"{len(result.deleted)} orphan blob(s) deleted of {result.scanned} scanned; "
        f"{result.young} unreferenced but younger than {hours:g} h kept"
    )


@research_app.command("export")
def research_export(
    out: Path = typer.Option(
        ..., help="Folder to write images/ and metadata.csv into (must be empty or new)."
    ),
) -> None:
    """Export de-identified lesion images and labels of patients who consented to research (scope c).

    Images are re-encoded without metadata and named by random ids; no patient or case id leaves.
    Patients without an active research consent are skipped and counted.
    """
    from backend.config import get_settings
    from backend.research import export_research
    from backend.services import build_services

    services = build_services(get_settings())
    if out.exists() and any(out.iterdir()):
        typer.echo(f"error: {out} is not empty", err=True)
        raise typer.Exit(2)
    summary = export_research(services, out)
    typer.echo(
        f"exported {summary.images} image(s) of {summary.patients} patient(s) to {out}; "
        f"skipped {summary.skipped_patients} patient(s) without research consent"
    )


def _case_path_inputs(images: Path | None, out: Path, concurrency: str) -> dict:  # type: ignore[type-arg]
    """What the case-path benchmarks (`bench api`, `bench paired`) take from their options and settings."""
    from backend.config import get_settings
    from benchmarks.triton import default_images_dir

    settings = get_settings()
    return {
        "images_dir": images or default_images_dir(),
        "out_dir": out,
        "model_repository": settings.model_repository,
        "model_name": settings.model_name,
        "concurrency": tuple(int(c) for c in concurrency.split(",")),
    }


def _register_bench_api() -> None:
    from backend.triton_cli import bench_app

    @bench_app.command("api")
    def bench_api(
        images: Path = typer.Option(
            None, help="Folder of JPEGs (default: $DERMALINK_SHARED/data/ham10000/full_size)."
        ),
        out: Path = typer.Option(Path("docs/benchmarks"), help="Where api.md, api.csv and api.png go."),
        concurrency: str = typer.Option("1,2,4,8,16", help="Comma-separated concurrency levels."),
        requests: int = typer.Option(
            48, min=1, help="Requests per concurrency level (at least 3 per client)."
        ),
        name: str = typer.Option("api", help="Base name of the output files."),
        breakdown: int = typer.Option(
            20, min=0, help="Sequential requests for the per-stage table read from /metrics (0: skip)."
        ),
        postgres: str = typer.Option(
            "", help="Also measure `serve --workers N` on a scratch database of this PostgreSQL server."
        ),
        workers: int = typer.Option(
            2,
            min=1,
            help="Server processes for the multi-process measurements: SQLite always, PostgreSQL with "
            "--postgres (1: the single-process SQLite server only).",
        ),
    ) -> None:
        """Real JPEG uploads through the HTTP API at increasing concurrency (p50/p95/p99, throughput),
        next to the bare model's batch-1 latency and best batched throughput measured in the same run."""
        from benchmarks.api import ApiBenchConfig, run

        config = ApiBenchConfig(
            **_case_path_inputs(images, out, concurrency),
            requests_per_level=requests,
            name=name,
            breakdown=breakdown,
            postgres_url=postgres or None,
            workers=workers,
        )
        result = run(config, log=typer.echo)
        for path in result["files"]:
            typer.echo(f"wrote {path}")

    @bench_app.command("paired")
    def bench_paired(
        baseline: str = typer.Option(..., help="The git revision to compare the working tree against."),
        images: Path = typer.Option(
            None, help="Folder of JPEGs (default: $DERMALINK_SHARED/data/ham10000/full_size)."
        ),
        out: Path = typer.Option(Path("docs/benchmarks"), help="Where paired.md and paired.csv go."),
        concurrency: str = typer.Option("1,16", help="Comma-separated concurrency levels."),
        pairs: int = typer.Option(80, min=2, help="Submissions to each server at concurrency 1."),
        rounds: int = typer.Option(4, min=2, help="Rounds per server at each higher concurrency."),
        name: str = typer.Option("paired", help="Base name of the output files."),
        workers: int = typer.Option(1, min=1, help="Server processes of each side (serve --workers N)."),
    ) -> None:
        """The case path of the working tree against a baseline commit: two servers side by side, the load
        alternating between them, so that the shared machine's drift hits both alike (p50, requests/s,
        server CPU per request, and their paired differences)."""
        from benchmarks.paired import PairedConfig, run

        config = PairedConfig(
            baseline=baseline,
            **_case_path_inputs(images, out, concurrency),
            pairs=pairs,
            rounds=rounds,
            name=name,
            workers=workers,
        )
        result = run(config, log=typer.echo)
        for path in result["files"]:
            typer.echo(f"wrote {path}")
