"""A load generator for the cluster: several clinicians submit real lesion images through the load balancer.

Used by the fault test (a steady, modest rate while parts are killed) and by `dermalink bench cluster`
(closed loop: each client submits again as soon as it has its answer). Each submission has its own
Idempotency-Key; a failed attempt (connection error, 5xx, 429) is retried with the *same* key until it
succeeds or its deadline passes, so a submission whose first attempt was stored but whose response was lost
comes back as the stored case (200) instead of a duplicate. Every attempt is recorded with the phase the
caller had set when it ended ("healthy", "kill-api", ...), so failures can be reported per fault.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

PASSWORD = "cluster load passphrase 1234"
RETRYABLE = {429, 500, 502, 503, 504}


@dataclass(frozen=True)
class Clinician:
    email: str
    patient_id: str


@dataclass
class Attempt:
    phase: str
    started: float
    seconds: float
    status: int | None  # None: no HTTP response (connection refused, reset, timeout)
    error: str = ""


@dataclass
class Submission:
    clinician: str
    key: str
    phase: str
    started: float
    attempts: list[Attempt] = field(default_factory=list)
    status: int | None = None  # the final status: 201 (created), 200 (a retry found it stored), or a failure
    case_id: str | None = None
    image_ids: list[str] = field(default_factory=list)
    seconds: float = 0.0  # first attempt's start to the successful answer
    analysed: bool = False  # the answer already carried the AI result

    @property
    def ok(self) -> bool:
        return self.status in (200, 201)


def prepare(env: dict[str, str], clinicians: int, *, prefix: str = "load") -> list[Clinician]:
    """Create a clinic, ``clinicians`` clinicians (each with one consenting patient) and a published consent
    version directly in the cluster's database, with the cluster's own settings and keys."""
    from backend.config import Settings
    from backend.consent import service as consent
    from backend.consent.schemas import ConsentCreate, DocumentCreate
    from backend.core.actor import SYSTEM, Actor
    from backend.patients.schemas import PatientIdentity
    from backend.services import build_services
    from backend.users.models import Role
    from backend.users.service import create_clinic, create_user

    settings = Settings(**{k.removeprefix("DERMALINK_").lower(): v for k, v in env.items()})
    services = build_services(settings)
    tag = uuid.uuid4().hex[:6]
    made = []
    try:
        with services.db.session() as session:
            services.vault.current_kek_id(session)
            clinic = create_clinic(session, SYSTEM, f"Load clinic {tag}")
            admin = create_user(
                session,
                SYSTEM,
                email=f"{prefix}.admin.{tag}@dermalink.local",
                full_name="Load admin",
                role=Role.admin,
                password=PASSWORD,
                password_min_length=12,
            )
            document = consent.publish(
                session,
                Actor(user=admin, ctx=SYSTEM),
                DocumentCreate(
                    version=f"load-{tag}",
                    language="en",
                    title="Consent for the cluster load",
                    text="Consent text for the cluster load generator.",
                    scopes=["ai_analysis", "specialist_sharing"],
                ),
            )
            for i in range(clinicians):
                user = create_user(
                    session,
                    SYSTEM,
                    email=f"{prefix}.clinician{i}.{tag}@dermalink.local",
                    full_name=f"Load clinician {i}",
                    role=Role.clinician,
                    password=PASSWORD,
                    password_min_length=12,
                    clinic_id=clinic.id,
                )
                actor = Actor(user=user, ctx=SYSTEM.as_actor(user.id, user.role))
                patient = services.patients.create(
                    session,
                    actor,
                    PatientIdentity(
                        full_name=f"Load Patient {i}",
                        date_of_birth="1970-01-01",
                        medical_record_number=f"LOAD-{tag}-{i}",
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
                        witness_name="Load witness",
                    ),
                    None,
                )
                made.append(Clinician(email=user.email, patient_id=str(patient.id)))
            session.commit()
    finally:
        services.db.dispose()
    return made


def load_images(folder: Path, limit: int = 35) -> list[bytes]:
    images = [p.read_bytes() for p in sorted(Path(folder).glob("*.jpg"))[:limit]]
    if not images:
        raise FileNotFoundError(f"no .jpg images in {folder}")
    return images


class LoadGenerator:
    """One thread per clinician. ``rate`` submissions per second in total (None: closed loop)."""

    def __init__(
        self,
        base_url: str,
        clinicians: list[Clinician],
        images: list[bytes],
        *,
        rate: float | None = 2.0,
        retry_deadline_s: float = 90.0,
        max_submissions: int = 10_000,
        timeout_s: float = 30.0,
    ) -> None:
        self.base_url = base_url
        self.clinicians = clinicians
        self.images = images
        self.rate = rate
        self.retry_deadline_s = retry_deadline_s
        self.max_submissions = max_submissions
        self.timeout_s = timeout_s
        self.phase = "healthy"
        self.submissions: list[Submission] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._count = 0

    # ------------------------------------------------------------------ control
    def start(self) -> LoadGenerator:
        self._stop.clear()
        self._threads = [
            threading.Thread(target=self._client, args=(i, c), name=f"load-{i}", daemon=True)
            for i, c in enumerate(self.clinicians)
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop submitting; a submission in flight keeps retrying until it succeeds or its deadline."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout if timeout is not None else self.retry_deadline_s + self.timeout_s + 10)

    def _take_slot(self) -> bool:
        with self._lock:
            if self._count >= self.max_submissions:
                return False
            self._count += 1
            return True

    # ------------------------------------------------------------------ one client
    def _login(self, client: httpx.Client, email: str, deadline: float) -> str | None:
        while time.monotonic() < deadline:
            try:
                response = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
                if response.status_code == 200:
                    return response.json()["access_token"]
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        return None

    def _client(self, index: int, clinician: Clinician) -> None:
        client = httpx.Client(base_url=self.base_url, timeout=self.timeout_s)
        token = self._login(client, clinician.email, time.monotonic() + self.retry_deadline_s)
        interval = len(self.clinicians) / self.rate if self.rate else 0.0
        next_at = time.monotonic() + interval * index / max(len(self.clinicians), 1)
        n = 0
        try:
            while token and not self._stop.is_set() and self._take_slot():
                if interval:
                    delay = next_at - time.monotonic()
                    if delay > 0 and self._stop.wait(delay):
                        break
                    next_at = max(next_at + interval, time.monotonic() - interval)
                image = self.images[(index * 7 + n) % len(self.images)]
                n += 1
                token = self._submit(client, clinician, token, image)
        finally:
            client.close()

    def _submit(self, client: httpx.Client, clinician: Clinician, token: str, image: bytes) -> str:
        key = uuid.uuid4().hex
        start = time.monotonic()
        sub = Submission(clinician=clinician.email, key=key, phase=self.phase, started=time.time())
        with self._lock:
            self.submissions.append(sub)
        metadata = json.dumps(
            {"patient_id": clinician.patient_id, "age": 50, "sex": "female", "site": "back"}
        )
        pause = 0.2
        while True:
            began = time.monotonic()
            status, error = None, ""
            try:
                response = client.post(
                    "/api/v1/cases",
                    headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key},
                    data={"metadata": metadata},
                    files=[("images", ("lesion.jpg", image, "image/jpeg"))],
                )
                status = response.status_code
                if status in (200, 201):
                    body = response.json()
                    sub.case_id, sub.image_ids = body["id"], [i["id"] for i in body["images"]]
                    sub.analysed = body["analysis"]["status"] == "done"
                elif status not in RETRYABLE:
                    error = response.text[:200]
            except httpx.HTTPError as exc:
                error = type(exc).__name__
            # An attempt counts in the phase it ended in: a request cut off by a fault fails when it ends.
            phase = self.phase
            sub.attempts.append(Attempt(phase, time.time(), time.monotonic() - began, status, error))
            sub.status = status
            if sub.ok:
                sub.seconds = time.monotonic() - start
                return token
            if status == 401:  # a token from before a restart is still valid; refresh anyway
                token = (
                    self._login(client, clinician.email, time.monotonic() + self.retry_deadline_s) or token
                )
            elif status is not None and status not in RETRYABLE:
                return token  # a rejection (4xx) is not retried: it would fail the same way
            if time.monotonic() - start > self.retry_deadline_s:
                return token
            time.sleep(pause)
            pause = min(pause * 2, 2.0)

    # ------------------------------------------------------------------ results
    def attempts_by_phase(self) -> dict[str, dict[str, float]]:
        """Per phase: attempts, failed attempts, their fraction, and what the failures were."""
        with self._lock:
            attempts = [a for s in self.submissions for a in s.attempts]
        table: dict[str, dict] = {}
        for attempt in attempts:
            row = table.setdefault(attempt.phase, {"attempts": 0, "failed": 0, "kinds": Counter()})
            row["attempts"] += 1
            if attempt.status not in (200, 201):
                row["failed"] += 1
                row["kinds"][str(attempt.status or attempt.error)] += 1
        for row in table.values():
            row["failed_fraction"] = row["failed"] / row["attempts"]
            row["kinds"] = dict(row["kinds"])
        return table

    def latency_summary(self, phase: str | None = None) -> dict[str, float]:
        with self._lock:
            done = [s for s in self.submissions if s.ok and (phase is None or s.phase == phase)]
        seconds = [s.seconds * 1000 for s in done]
        return {
            "submissions": len(done),
            "p50_ms": float(np.percentile(seconds, 50)) if seconds else float("nan"),
            "p95_ms": float(np.percentile(seconds, 95)) if seconds else float("nan"),
        }
