"""Where analysis jobs run.

``embedded`` (the default): a thread inside the server process polls the database for due jobs and is
woken at once when a case is submitted. ``redis``: `dermalink worker` processes run RQ workers; the
server enqueues each job in Redis and a sweeper in every worker re-enqueues jobs that Redis lost
(it keeps nothing on disk) or whose worker died. Either way the database row is the truth: a job is
done only when its results are committed.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from functools import lru_cache

from backend.cases.analysis import Analyzer
from backend.core.logging import log

QUEUE_NAME = "dermalink-analysis"


class EmbeddedRunner:
    """Runs analyses in this process. With ``inline`` (in-process ONNX Runtime) a submission analyses its
    own images in its request, from the pixels intake already decoded, batched with concurrent requests;
    the thread here runs only retries and jobs left over by a crash."""

    def __init__(self, analyzer: Analyzer, *, poll_seconds: float = 2.0, inline: bool = False) -> None:
        self.inline = inline
        self.analyzer = analyzer
        self.poll_seconds = poll_seconds
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._attempted: dict[uuid.UUID, threading.Event] = {}  # jobs someone waits on

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="dermalink-analysis", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=30)

    def submit(self, job_id: uuid.UUID) -> None:
        self._attempted.setdefault(job_id, threading.Event())
        self._wake.set()

    def wait(self, job_id: uuid.UUID, timeout: float) -> None:
        """Wait until the job's first attempt ended (done, failed or rescheduled), at most ``timeout``."""
        event = self._attempted.setdefault(job_id, threading.Event())
        event.wait(timeout)
        self._attempted.pop(job_id, None)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                ran = self.analyzer.run_due()
            except Exception:  # the database may be restarting: keep the loop alive and try again
                log.exception("analysis loop error")
                ran = []
            for job_id in ran:
                if job_id in self._attempted:
                    self._attempted[job_id].set()
            if not ran:
                self._wake.wait(self.poll_seconds)
                self._wake.clear()


class RedisDispatcher:
    """Hands jobs to RQ workers. If Redis is down the job stays pending in the database for the sweeper."""

    inline = False

    def __init__(self, redis_url: str, analyzer: Analyzer) -> None:
        from redis import Redis
        from rq import Queue

        self.analyzer = analyzer
        self.queue = Queue(QUEUE_NAME, connection=Redis.from_url(redis_url, socket_timeout=5))

    def start(self) -> None:
        return None

    def stop(self) -> None:
        return None

    def wait(self, job_id: uuid.UUID, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.analyzer.status(job_id) in ("pending", "running"):
            time.sleep(0.2)

    def submit(self, job_id: uuid.UUID) -> None:
        try:
            self.queue.enqueue(run_job, str(job_id), job_id=f"analysis-{job_id}", job_timeout=600)
        except Exception as exc:  # the sweeper enqueues it later
            log.warning("could not enqueue analysis job", job_id=str(job_id), error=type(exc).__name__)


@lru_cache(maxsize=1)
def _worker_analyzer() -> Analyzer:
    from backend.config import get_settings
    from backend.services import build_services

    return build_services(get_settings()).analyzer


def run_job(job_id: str) -> str:
    """The RQ task: claim the job in the database and run it."""
    analyzer = _worker_analyzer()
    if not analyzer.claim(uuid.UUID(job_id)):
        return "skipped"
    return analyzer.run(uuid.UUID(job_id))


def sweep(analyzer: Analyzer, dispatcher: RedisDispatcher) -> int:
    """Enqueue every due job (pending and due, or with an expired lease) that may not be in Redis."""
    from sqlalchemy import or_
    from sqlmodel import select

    from backend.cases.models import AnalysisJob
    from backend.core.clock import utcnow

    now = utcnow()
    with analyzer.session_factory() as session:
        due = session.exec(
            select(AnalysisJob.id).where(
                or_(
                    (AnalysisJob.status == "pending") & (AnalysisJob.next_attempt_at <= now),
                    (AnalysisJob.status == "running") & (AnalysisJob.lease_expires_at < now),  # type: ignore[operator]
                )
            )
        ).all()
    for job_id in due:
        dispatcher.submit(job_id)
    return len(due)


def patient_redis(redis_url: str):  # type: ignore[no-untyped-def]
    """A Redis client that rides out a Redis restart: every command retries connection errors with
    exponential backoff for about a minute. Without it RQ's worker quits on the first heartbeat that finds
    Redis gone (seen in the cluster fault test). The API's dispatcher keeps failing fast instead: a job it
    cannot enqueue stays pending in the database for the sweeper."""
    from redis import Redis
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
    from redis.retry import Retry

    return Redis.from_url(
        redis_url,
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.1), 30),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )


def run_worker(
    redis_url: str, *, sweep_seconds: float, burst: bool, on_start: Callable[[], None] | None = None
) -> None:
    """`dermalink worker`: an RQ worker plus a sweeper thread."""
    from rq import SimpleWorker

    analyzer = _worker_analyzer()
    dispatcher = RedisDispatcher(redis_url, analyzer)
    stop = threading.Event()

    def sweeper() -> None:
        while not stop.is_set():
            try:
                sweep(analyzer, dispatcher)
            except Exception:
                log.exception("sweep failed")
            stop.wait(sweep_seconds)

    sweep(analyzer, dispatcher)
    if not burst:
        threading.Thread(target=sweeper, name="dermalink-sweeper", daemon=True).start()
    if on_start:
        on_start()
    try:
        # SimpleWorker runs jobs in this process (no fork), so database connection pools are never shared
        # between processes; a crash mid-job is covered by the job's lease in the database.
        SimpleWorker([QUEUE_NAME], connection=patient_redis(redis_url)).work(
            burst=burst, with_scheduler=False
        )
    finally:
        stop.set()
