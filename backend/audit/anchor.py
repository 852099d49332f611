"""Anchoring the audit chain outside the database: signed checkpoints in the blob store.

The hash chain and the authenticated head (`backend.audit.service`) show any change made *inside* the
chain, but someone who can write the database can still cut events off the end and put back an older,
authentic head row they saw earlier, or empty the trail back to the genesis head of a new database.
Nothing inside the database can tell those states from genuine ones. So every so often (every
``audit_checkpoint_events`` events or ``audit_checkpoint_minutes`` minutes, at start-up and at shutdown)
the server writes a **checkpoint** -- the head's (seq, hash), the time and an HMAC over them under a key
derived from the master key -- to the blob store under ``audit/checkpoints/``. `verify` then requires
every event up to each checkpoint to be present with the hash the checkpoint names.

What each party can do (see docs/security.md): database-only write access cannot touch checkpoints;
blob store write access can delete them (not forge them) unless the store holds them under S3 Object
Lock in compliance mode (``audit_checkpoint_lock_days``); the master key forges anything but locked
checkpoints.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, select

from backend.audit.models import AuditChainHead
from backend.audit.service import head_is_authentic, seal_legacy_head
from backend.core.clock import utcnow
from backend.core.keys import derive_key
from backend.core.logging import log
from backend.storage import BlobError, BlobStore

PREFIX = "audit/checkpoints"
# What a background write may meet while the store or the database restarts: logged, retried later.
TRANSIENT = (BlobError, SQLAlchemyError, OSError)


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    written_at: datetime
    key: str


@dataclass(frozen=True)
class CheckpointScan:
    """Every checkpoint found: the authentic ones, and the keys of those that failed authentication."""

    checkpoints: list[Checkpoint]
    forged: list[str]

    @property
    def newest(self) -> Checkpoint | None:
        return max(self.checkpoints, key=lambda c: (c.seq, c.written_at), default=None)


class CheckpointStore:
    def __init__(self, blobs: BlobStore, audit_key: bytes, *, lock_days: int = 0) -> None:
        self.blobs = blobs
        self._key = derive_key(audit_key, "audit-checkpoint")
        self.audit_key = audit_key
        self.lock_days = lock_days

    def _mac(self, seq: int, hash_: str, written_at: str) -> str:
        return hmac.new(self._key, f"{seq}|{hash_}|{written_at}".encode(), hashlib.sha256).hexdigest()

    def write(self, seq: int, hash_: str) -> Checkpoint:
        now = utcnow()
        stamp = now.isoformat(timespec="microseconds")
        body = {"seq": seq, "hash": hash_, "written_at": stamp, "mac": self._mac(seq, hash_, stamp)}
        key = f"{PREFIX}/{seq:015d}-{now:%Y%m%dT%H%M%S%f}Z-{secrets.token_hex(4)}.json"
        data = json.dumps(body, sort_keys=True).encode()
        retain_until = now + timedelta(days=self.lock_days) if self.lock_days > 0 else None
        self.blobs.put_retained(key, data, retain_until)
        return Checkpoint(seq, hash_, now, key)

    def scan(self) -> CheckpointScan:
        found, forged = [], []
        for key, data in sorted(self.blobs.iter_retained(PREFIX)):
            try:
                body = json.loads(data)
                seq, hash_, stamp, mac = (
                    int(body["seq"]),
                    str(body["hash"]),
                    str(body["written_at"]),
                    body["mac"],
                )
                authentic = isinstance(mac, str) and hmac.compare_digest(mac, self._mac(seq, hash_, stamp))
                written_at = datetime.fromisoformat(stamp)
            except (ValueError, KeyError, TypeError):
                authentic = False
            if authentic:
                found.append(Checkpoint(seq, hash_, written_at, key))
            else:
                forged.append(key)
        return CheckpointScan(found, forged)

    def newest_seq(self) -> int:
        newest = self.scan().newest
        return newest.seq if newest else 0

    def checkpoint_now(self, session: Session, *, unless_seq: int | None = None) -> Checkpoint | None:
        """Anchor the current head, if it is authentic, past genesis, and not ``unless_seq`` (already
        anchored). A forged head is never anchored: that would vouch for the forgery."""
        head = session.exec(select(AuditChainHead).where(AuditChainHead.id == 1)).first()
        session.rollback()  # end the read transaction at once (SQLite has one writer)
        if head is None or head.seq == 0 or head.seq == unless_seq:
            return None
        if not head_is_authentic(self.audit_key, head):
            log.error("audit chain head failed authentication; no checkpoint written", seq=head.seq)
            return None
        return self.write(head.seq, head.hash)


class AuditAnchor:
    """Writes checkpoints from a background thread: at start, every ``every_events`` events or every
    ``every_minutes`` minutes when the chain grew, and at stop."""

    def __init__(
        self,
        store: CheckpointStore,
        session_factory: Callable[[], Session],
        *,
        every_events: int,
        every_minutes: float,
    ) -> None:
        self.store = store
        self.session_factory = session_factory
        self.every_events = max(every_events, 1)
        self.every_seconds = max(every_minutes * 60.0, 1.0)
        self.poll_seconds = min(10.0, self.every_seconds)
        self._last_seq = 0
        self._last_at = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start_up(self) -> None:
        """Authenticate a pre-0004 head (only while no checkpoint exists) and anchor the current head."""
        scan = self.store.scan()
        newest = scan.newest
        if newest is None and not scan.forged:
            with self.session_factory() as session:
                if seal_legacy_head(session, self.store.audit_key):
                    log.info("audit chain head authenticated for the first time")
                session.commit()
        self._last_seq = newest.seq if newest else 0
        self._checkpoint()

    def start(self) -> None:
        self.start_up()
        self._thread = threading.Thread(target=self._loop, name="dermalink-audit-anchor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=30)
        self._checkpoint()

    def _checkpoint(self) -> None:
        try:
            with self.session_factory() as session:
                written = self.store.checkpoint_now(session, unless_seq=self._last_seq)
        except TRANSIENT:  # the store or database may be down: try again at the next tick
            log.exception("audit checkpoint failed")
            return
        if written is not None:
            self._last_seq = written.seq
        self._last_at = time.monotonic()

    def _due(self) -> bool:
        with self.session_factory() as session:
            seq = session.exec(select(AuditChainHead.seq).where(AuditChainHead.id == 1)).first() or 0
            session.rollback()
        grown = seq - self._last_seq
        return grown >= self.every_events or (
            grown > 0 and time.monotonic() - self._last_at >= self.every_seconds
        )

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                due = self._due()
            except TRANSIENT:
                log.exception("audit anchor loop error")
                continue
            if due:
                self._checkpoint()
