"""Sweeping orphan blobs: encrypted blobs whose database commit never happened.

Intake stores each encrypted image (and its heatmap, and a consent's signature image) *before* the commit
that names it, so a crash, a lost connection or a refused commit in between leaves a blob that no row
references. It is unreadable without its patient's data key, but it is still patient data and takes
space. The sweeper deletes blobs under ``patients/`` that are older than a grace period and that no row
names (``case_image.blob_key``, ``analysis_result.heatmap_blob_key``, ``consent_event.signature_blob``).
The grace period (``orphan_blob_grace_hours``, 24 h by default) must exceed the longest request: a blob of a submission still in flight is always
younger than that, so it is never swept. Each sweep that deletes anything is audited.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, select

from backend.audit.anchor import TRANSIENT
from backend.audit.service import record
from backend.cases.models import AnalysisResult, CaseImage
from backend.consent.models import ConsentEvent
from backend.core.actor import SYSTEM
from backend.core.clock import utcnow
from backend.core.logging import log
from backend.storage import BlobStore, LocalBlobStore

PREFIX = "patients"
CHUNK = 500


@dataclass(frozen=True)
class SweepResult:
    scanned: int
    deleted: list[str]
    young: int  # unreferenced but inside the grace period: maybe a submission still in flight


def _referenced(session: Session, keys: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(keys), CHUNK):
        chunk = keys[start : start + CHUNK]
        found.update(session.exec(select(CaseImage.blob_key).where(CaseImage.blob_key.in_(chunk))))  # type: ignore[attr-defined]
        heatmaps = AnalysisResult.heatmap_blob_key
        found.update(k for k in session.exec(select(heatmaps).where(heatmaps.in_(chunk))) if k)  # type: ignore[union-attr]
        found.update(
            k
            for k in session.exec(
                select(ConsentEvent.signature_blob).where(ConsentEvent.signature_blob.in_(chunk))  # type: ignore[union-attr]
            )
            if k
        )
    return found


def sweep_orphans(
    blobs: BlobStore,
    session_factory: Callable[[], Session],
    *,
    grace: timedelta,
    now: datetime | None = None,
) -> SweepResult:
    """Delete unreferenced blobs under ``patients/`` last modified more than ``grace`` ago."""
    cutoff = (now or utcnow()) - grace
    listed = list(blobs.iter_modified(PREFIX))
    with session_factory() as session:
        referenced = _referenced(session, [key for key, _ in listed])
        session.rollback()
    unreferenced = [(key, modified) for key, modified in listed if key not in referenced]
    orphans = [key for key, modified in unreferenced if modified <= cutoff]
    for key in orphans:
        blobs.delete(key)
    if isinstance(blobs, LocalBlobStore):
        blobs.cleanup_temp(older_than=grace.total_seconds())
    if orphans:
        with session_factory() as session:
            record(
                session,
                SYSTEM,
                "storage.sweep_orphans",
                resource_type="blob",
                detail={"deleted": len(orphans), "grace_hours": grace.total_seconds() / 3600},
            )
            session.commit()
        log.info("orphan blobs swept", deleted=len(orphans))
    return SweepResult(scanned=len(listed), deleted=orphans, young=len(unreferenced) - len(orphans))


class OrphanSweeper:
    """Runs `sweep_orphans` in a background thread: a first time a minute after start, then every
    ``every_hours``."""

    def __init__(
        self,
        blobs: BlobStore,
        session_factory: Callable[[], Session],
        *,
        grace: timedelta,
        every_hours: float,
        first_delay_s: float = 60.0,
    ) -> None:
        self.blobs, self.session_factory, self.grace = blobs, session_factory, grace
        self.every_s = every_hours * 3600.0
        self.first_delay_s = first_delay_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.every_s <= 0:
            return
        self._thread = threading.Thread(target=self._loop, name="dermalink-orphan-sweeper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        delay = min(self.first_delay_s, self.every_s)
        while not self._stop.wait(delay):
            try:
                sweep_orphans(self.blobs, self.session_factory, grace=self.grace)
            except TRANSIENT:  # the store or database may be down: try again next time
                log.exception("orphan sweep failed")
            delay = self.every_s
