"""Case intake, reading, the consultation queue and answers.

Authorization lives in the query: `visible_cases` gives a clinician the cases of their clinic and a
dermatologist the cases routed to them (claimed or answered); admins see none. The queue shows waiting
cases to every dermatologist, without images, until one claims a case. A dermatologist never sees a
case (nor, through `patients_routed_to`, a patient) whose patient does not consent to
``specialist_sharing`` right now, and nobody sees the cases of an erased patient (their reads answer
410 Gone).
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for_futures
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import timedelta
from typing import NamedTuple

import numpy as np
from sqlalchemy import bindparam, false, or_
from sqlalchemy import case as sql_case
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import make_transient_to_detached
from sqlmodel import Session, select
from sqlmodel.sql.expression import SelectOfScalar

from backend.audit.service import record, take_pending
from backend.cases.analysis import Analyzer
from backend.cases.models import (
    AnalysisJob,
    AnalysisResult,
    Answer,
    Case,
    CaseImage,
    CaseState,
    CaseTransition,
    TriageLevel,
)
from backend.cases.routing import touch, transition
from backend.cases.schemas import (
    AnalysisOut,
    AnswerCreate,
    AnswerOut,
    CaseCreate,
    CaseOut,
    ImageOut,
    QueueItem,
    ResultOut,
    TransitionOut,
    TriageOut,
)
from backend.consent import service as consent
from backend.consent.models import Scope
from backend.core import metrics
from backend.core.actor import Actor
from backend.core.clock import utcnow
from backend.core.errors import Conflict, Gone, NotFound, PreconditionFailed, ValidationFailed
from backend.crypto.envelope import Vault
from backend.db import end_read_transaction, insert_in_order
from backend.group_commit import GroupCommitter
from backend.images.intake import (
    DecodeBudget,
    DecodedUpload,
    SanitizedImage,
    declared_pixels,
    decode_checked,
    encode_sanitized,
)
from backend.images.quality import QualityReport, assess
from backend.inference.cam import heatmap_png
from backend.inference.preprocess import oriented_to_model_input
from backend.lesions import visits
from backend.lesions.models import Lesion, LesionChange
from backend.lesions.schemas import LesionChangeOut
from backend.patients.models import Patient
from backend.patients.service import visible_clinic_id
from backend.storage import BlobNotFound
from backend.users.models import Role

URGENCY_RANK = sql_case((Case.triage_level == TriageLevel.urgent.value, 0), else_=1)


def erased_patients():  # type: ignore[no-untyped-def]
    """Patients whose erasure was requested or done: their cases leave every list, queue and read."""
    return select(Patient.id).where(
        or_(Patient.erasure_requested_at.is_not(None), Patient.erased_at.is_not(None))  # type: ignore[union-attr]
    )


def sharing_consented():  # type: ignore[no-untyped-def]
    return consent.patients_consenting(Scope.specialist_sharing)


def patients_routed_to(user_id: uuid.UUID):  # type: ignore[no-untyped-def]
    """Patients a dermatologist may see: those of the cases they hold or answered, while the patient
    consents to sharing with a dermatologist."""
    return select(Case.patient_id).where(
        or_(Case.claimed_by == user_id, Case.answered_by == user_id),
        Case.patient_id.in_(sharing_consented()),  # type: ignore[attr-defined]
    )


def visible_cases(actor: Actor, *, include_erased: bool = False) -> SelectOfScalar[Case]:
    query = select(Case)
    if not include_erased:
        query = query.where(Case.patient_id.not_in(erased_patients()))  # type: ignore[attr-defined]
    if actor.role is Role.clinician and actor.user.clinic_id is not None:
        return query.where(Case.clinic_id == actor.user.clinic_id)
    if actor.role is Role.dermatologist:
        return query.where(
            or_(Case.claimed_by == actor.user.id, Case.answered_by == actor.user.id),
            Case.patient_id.in_(sharing_consented()),  # type: ignore[attr-defined]
        )
    return query.where(false())


def _erased(session: Session, patient_id: uuid.UUID) -> bool:
    return session.exec(erased_patients().where(Patient.id == patient_id)).first() is not None


@dataclass(frozen=True)
class Upload:
    filename: str
    data: bytes


@dataclass(frozen=True)
class DecodedImage:
    """One upload checked and decoded, with the model's input; not yet re-encoded for storage."""

    upload: DecodedUpload
    model_input: np.ndarray
    decode_seconds: float


@dataclass(frozen=True)
class PreparedImage:
    """One upload after intake: the sanitised JPEG to store, its quality, and the model's input."""

    image: SanitizedImage
    quality: QualityReport
    model_input: np.ndarray


class Submission(NamedTuple):
    """What `CaseService.submit` did: the case, its job, whether it was created now (False: a retry),
    and, when it was created and analysed in the same transaction, its view built from the rows in
    memory (so the answer needs no query; None otherwise: read it with `CaseService.view`)."""

    case: Case
    job: AnalysisJob
    created: bool
    out: CaseOut | None = None


@dataclass(frozen=True)
class IntakeLimits:
    max_images: int
    max_image_bytes: int
    max_pixels: int


def submission_hash(body: CaseCreate, uploads: list[Upload]) -> str:
    digest = hashlib.sha256(json.dumps(body.model_dump(mode="json"), sort_keys=True).encode())
    for upload in uploads:
        digest.update(hashlib.sha256(upload.data).digest())
    return digest.hexdigest()


# A retry's case by its Idempotency-Key, built once (every submission asks): the id alone, since nearly
# every submission is new and loading a whole row as a model costs far more Python than the query.
_CASE_BY_KEY = select(Case.id).where(
    Case.created_by == bindparam("created_by"), Case.idempotency_key == bindparam("key")
)


class CaseService:
    def __init__(  # type: ignore[no-untyped-def]
        self,
        vault: Vault,
        blobs,
        limits: IntakeLimits,
        claim_minutes: int,
        *,
        analyzer: Analyzer | None = None,
        decode_budget: DecodeBudget | None = None,
        sessions: Callable[[], Session] | None = None,
    ) -> None:
        """``sessions``: a session factory for committing submissions in groups (`GroupCommitter`);
        without it each submission's rows are committed by the request's unit of work."""
        self.vault = vault
        self.blobs = blobs
        self.limits = limits
        self.claim_minutes = claim_minutes
        self.analyzer = analyzer
        self.decode_budget = decode_budget
        self.committer = (
            GroupCommitter(sessions, _ORDERED, observe=metrics.observe_commit_group) if sessions else None
        )
        # Decodes a submission's images while its request thread runs the read-only checks (threads are
        # started on first use; the decoding budget, not this pool, bounds the pixels in memory).
        self._intake = ThreadPoolExecutor(thread_name_prefix="dermalink-intake")

    # -- intake --------------------------------------------------------------------------------
    def submit(
        self,
        session: Session,
        actor: Actor,
        body: CaseCreate,
        uploads: list[Upload],
        idempotency_key: str,
        *,
        analyse_inline: bool = False,
    ) -> Submission:
        """Store the case, its images (encrypted) and its analysis job; the caller's unit of work commits.

        Three phases, so that no image work happens inside a transaction and the write lock is held only
        for the inserts: (1) a read-only transaction checks the idempotency key, the patient and consent
        (every scope read once: the analysis and the sharing that routing needs), while another thread
        decodes the images once and reduces them to the model's input (a refusal of the images still
        comes after the checks);
        (2) outside any transaction the images are re-encoded (sanitised), checked, encrypted and written
        to the blob store (before the commit that refers to them); with ``analyse_inline`` the model runs
        meanwhile, in a batch shared with concurrent submissions, once the checks have read the consent
        to AI analysis;
        (3) the case, images, job and, when analysed, its results, triage and routing are built in
        memory (those that do not depend on the images already while the decode finishes), then made
        durable at once with the audit events (`_store`: by the group committer, in a transaction shared
        with concurrent submissions; or inserted by `_write` for the caller's commit).

        ``created`` is False in the result when this is a retry of a submission already stored under
        the same idempotency key."""
        counted = 1 <= len(uploads) <= self.limits.max_images
        batcher = self.analyzer.batcher if analyse_inline and self.analyzer else None
        # The images are decoded (in another thread) while this one runs the read-only checks; a refusal
        # of the images still comes only after the checks, and the model runs only once consent to AI
        # analysis has been read.
        with self._decoded_meanwhile(uploads, batcher) if counted else nullcontext() as decoding:
            with metrics.stage("checks"):
                request_hash = submission_hash(body, uploads)
                existing = self._by_idempotency_key(session, actor, idempotency_key)
                if existing is not None:
                    return self._replay(session, existing, request_hash)
                if decoding is None:
                    raise ValidationFailed(
                        f"send between 1 and {self.limits.max_images} images (field 'images')"
                    )
                patient_id = body.patient_id
                clinic_id = visible_clinic_id(session, actor, patient_id)
                consents = consent.require_consenting(
                    session, patient_id, Scope.ai_analysis, Scope.specialist_sharing
                )
                sharing = consents[Scope.specialist_sharing]
                visits.check_followup(session, patient_id, body.lesion_id)
                seal = self.vault.sealer(session, patient_id)
                end_read_transaction(session)

            # Every row is built in memory (no statement runs: the triage reads nothing, the sharing
            # consent was read above) and made durable at once by `_store`, so the write lock (SQLite's
            # single writer) is held only for the inserts and the commit, not for this Python work. The
            # rows that do not depend on the images are built now, while the decode finishes on another
            # core, rather than beside the model, which wants both.
            with session.no_autoflush:
                lesion = visits.for_submission(
                    session, patient_id, clinic_id, body.lesion_id, body.site, actor.user.id
                )
                case = Case(
                    patient_id=patient_id,
                    clinic_id=clinic_id,
                    lesion_id=lesion.id,
                    created_by=actor.user.id,
                    idempotency_key=idempotency_key,
                    request_hash=request_hash,
                    age=body.age,
                    sex=body.sex,
                    site=body.site,
                    history=body.history.model_dump(),
                    concern=body.concern,
                    wants_specialist=body.wants_specialist,
                )
                if body.notes:
                    case.notes_sealed = seal(f"case:{case.id}:notes", body.notes.encode())
                received = CaseTransition(
                    case_id=case.id,
                    from_state=None,
                    to_state=CaseState.received.value,
                    actor_id=actor.user.id,
                    actor_role=actor.user.role,
                )
                job = AnalysisJob(case_id=case.id)
                session.add_all([case, received, job])
                # A refused image rolls the request back: these rows and the event go with it.
                record(
                    session,
                    actor.ctx,
                    "case.create",
                    resource_type="case",
                    resource_id=case.id,
                    patient_id=patient_id,
                    detail={"images": len(uploads)},
                )
            inference = None
            decoded = decoding.result()
            if batcher:
                # The model runs (in a batch with concurrent submissions) while this thread re-encodes,
                # checks, encrypts and stores the images.
                inference = self.analyzer.start(np.stack([d.model_input for d in decoded]))
            prepared = self.finish(decoded)
        stored: list[tuple[PreparedImage, str]] = []
        with metrics.stage("encrypt_store"):
            for position, image in enumerate(prepared):
                # One folder per patient, no folder per case: a new folder would cost one more fsync.
                blob_key = f"patients/{patient_id}/images/{case.id}-{position}-{uuid.uuid4().hex}.jpg.enc"
                # The encrypted image is stored before the database commit that refers to it.
                self.blobs.put(blob_key, seal(f"blob:{blob_key}", image.image.data))
                stored.append((image, blob_key))

        with session.no_autoflush:
            images = [self._image_row(case.id, position, *item) for position, item in enumerate(stored)]
            session.add_all(images)
            out = None
            outcome = inference() if inference else None
            if outcome is not None:
                self.analyzer.settle(session, job, case, images, outcome, sharing=sharing)
                # Everything the answer shows was made here and is still in memory: it is built from
                # these rows, not read back.
                added = list(session.new)
                out = self._out(
                    case,
                    notes=body.notes or None,
                    images=images,
                    results=[r for r in added if isinstance(r, AnalysisResult)],
                    job=job,
                    answer=None,
                    transitions=[t for t in added if isinstance(t, CaseTransition)],  # received first
                    lesion_change=None,  # analysed inline only when it follows up no lesion
                )
        try:
            with metrics.stage("insert"):
                self._store(session)  # a parallel retry with the same key fails here
        except IntegrityError:
            session.rollback()
            for _, blob_key in stored:
                self.blobs.delete(blob_key)
            existing = self._by_idempotency_key(session, actor, idempotency_key)
            if existing is None:
                raise
            return self._replay(session, existing, request_hash)
        return Submission(case, job, True, out)

    def _store(self, session: Session) -> None:
        """Make the submission's new rows and audit events durable: through the group committer (one
        transaction shared with concurrent submissions; the request's unit of work is then left with
        nothing to commit), or, for rows it does not insert or changes to stored rows (a follow-up's
        lesion), with `_write` for the unit of work's commit."""
        pending = list(session.new)
        committer = self.committer
        if committer is None or session.dirty or session.deleted or not committer.accepts(pending):
            _write(session)
            return
        for row in pending:
            session.expunge(row)
        events = take_pending(session)
        # Nothing left to write here: the read transaction ends and its connection goes back to the pool
        # before the wait, so that waiting submissions can never hold every connection the committer needs.
        end_read_transaction(session)
        committer.write(pending, events)
        for row in pending:  # stored: attached again as if loaded, so that a refresh or expiry works
            make_transient_to_detached(row)
            session.add(row)
        end_read_transaction(session)  # attaching began a transaction; it holds nothing to commit

    @staticmethod
    def _image_row(case_id: uuid.UUID, position: int, image: PreparedImage, blob_key: str) -> CaseImage:
        quality = image.quality
        return CaseImage(
            case_id=case_id,
            position=position,
            blob_key=blob_key,
            sha256=image.image.sha256,
            media_type=image.image.media_type,
            width=image.image.width,
            height=image.image.height,
            quality_ok=quality.ok,
            quality={
                "ok": quality.ok,
                "reasons": quality.reasons,
                "laplacian_variance": round(quality.laplacian_variance, 2),
            },
        )

    @contextmanager
    def _decoded_meanwhile(self, uploads: list[Upload], batcher) -> Iterator[Future[list[DecodedImage]]]:  # type: ignore[no-untyped-def]
        """Hold the decoding budget for ``uploads`` and decode them in the intake pool (with this
        request's context: its logs keep its id) while the caller goes on; the budget is held until the
        block ends (the caller encodes and checks the pixels inside it) and, even on an error, until that
        decode is done."""

        def decode() -> list[DecodedImage]:
            with batcher.expect() if batcher else nullcontext():
                return self.decode(uploads)

        with self._decoding(uploads):
            future = self._intake.submit(contextvars.copy_context().run, decode)
            # Hand the interpreter lock to the intake thread now: its few lines of Python before the
            # decoder lets go of the lock then run before the checks, which are not what the model waits for.
            time.sleep(0)
            try:
                yield future
            finally:
                wait_for_futures([future])

    def _decoding(self, uploads: list[Upload]):  # type: ignore[no-untyped-def]
        """Hold the decoding budget for these uploads' pixels (until they are encoded and checked)."""
        # An image over the per-image limit is refused by `decode_checked` (422) before any decoding:
        # only the others count against the budget.
        declared = sum(
            p for p in map(declared_pixels, (u.data for u in uploads)) if p <= self.limits.max_pixels
        )
        return self.decode_budget.reserve(declared) if self.decode_budget else nullcontext()

    def decode(self, uploads: list[Upload]) -> list[DecodedImage]:
        """Check and decode every upload (all refusals happen here) and derive the model's input."""
        decoded = []
        for upload in uploads:
            started = time.perf_counter()
            image = decode_checked(
                upload.data, max_bytes=self.limits.max_image_bytes, max_pixels=self.limits.max_pixels
            )
            seconds = time.perf_counter() - started
            with metrics.stage("preprocess"):
                model_input = oriented_to_model_input(image.pixels)
            decoded.append(DecodedImage(image, model_input, seconds))
        return decoded

    def finish(self, decoded: list[DecodedImage]) -> list[PreparedImage]:
        """Re-encode each decoded upload for storage and check its quality."""
        prepared = []
        for item in decoded:
            started = time.perf_counter()
            sanitized = encode_sanitized(item.upload)
            metrics.observe_stage("intake", item.decode_seconds + time.perf_counter() - started)
            with metrics.stage("quality"):
                quality = assess(item.upload.pixels)
            prepared.append(PreparedImage(image=sanitized, quality=quality, model_input=item.model_input))
        decoded.clear()  # the full-size pixels go now, not when the request ends
        return prepared

    def _by_idempotency_key(self, session: Session, actor: Actor, key: str) -> Case | None:
        case_id = session.exec(_CASE_BY_KEY, params={"created_by": actor.user.id, "key": key}).first()
        return session.get(Case, case_id) if case_id is not None else None

    def _replay(self, session: Session, case: Case, request_hash: str) -> Submission:
        if case.request_hash != request_hash:
            raise Conflict("this Idempotency-Key was already used for a different submission")
        job = session.exec(select(AnalysisJob).where(AnalysisJob.case_id == case.id)).one()
        return Submission(case, job, False)

    # -- reading -------------------------------------------------------------------------------
    def get(self, session: Session, actor: Actor, case_id: uuid.UUID, *, audit: bool = True) -> Case:
        case = session.exec(visible_cases(actor).where(Case.id == case_id)).first()
        if case is None:
            gone = session.exec(visible_cases(actor, include_erased=True).where(Case.id == case_id)).first()
            record(
                session,
                actor.ctx,
                "case.view",
                outcome="denied",
                resource_type="case",
                resource_id=case_id,
                patient_id=gone.patient_id if gone else None,
                reason="patient erased" if gone else "not found or not visible",
            )
            if gone is not None:
                raise Gone(f"case {case_id} belonged to a patient whose data was erased")
            raise NotFound(f"case {case_id} not found")
        if actor.role is Role.dermatologist:
            consent.require(session, case.patient_id, Scope.specialist_sharing)
        if audit:
            record(
                session,
                actor.ctx,
                "case.view",
                resource_type="case",
                resource_id=case.id,
                patient_id=case.patient_id,
            )
        return case

    def view(self, session: Session, case: Case) -> CaseOut:
        # The job first, then the case again: on PostgreSQL each statement sees what was committed when it
        # began, and an analysis commits its job and its case together, so a job read as done means the
        # case read after it shows the analysis too (never "done" beside a case still "received").
        job = session.exec(select(AnalysisJob).where(AnalysisJob.case_id == case.id)).first()
        session.refresh(case)
        images = list(
            session.exec(select(CaseImage).where(CaseImage.case_id == case.id).order_by(CaseImage.position))
        )
        results = list(session.exec(select(AnalysisResult).where(AnalysisResult.case_id == case.id)))
        answer = session.exec(select(Answer).where(Answer.case_id == case.id)).first()
        transitions = session.exec(
            select(CaseTransition).where(CaseTransition.case_id == case.id).order_by(CaseTransition.at)
        )  # type: ignore[arg-type]
        notes = None
        if case.notes_sealed:
            notes = self.vault.decrypt(
                session, case.patient_id, f"case:{case.id}:notes", case.notes_sealed
            ).decode()
        answer_out = None
        if answer is not None:
            note = None
            if answer.note_sealed:
                note = self.vault.decrypt(
                    session, case.patient_id, f"answer:{answer.id}", answer.note_sealed
                ).decode()
            answer_out = AnswerOut.model_validate(answer).model_copy(update={"note": note})
        lesion_change = session.exec(
            select(LesionChange).where(LesionChange.followup_case_id == case.id)
        ).first()
        return self._out(
            case,
            notes=notes,
            images=images,
            results=results,
            job=job,
            answer=answer_out,
            transitions=list(transitions),
            lesion_change=lesion_change,
        )

    @staticmethod
    def _out(
        case: Case,
        *,
        notes: str | None,
        images: list[CaseImage],
        results: list[AnalysisResult],
        job: AnalysisJob | None,
        answer: AnswerOut | None,
        transitions: list[CaseTransition],
        lesion_change: LesionChange | None,
    ) -> CaseOut:
        message = None
        if case.sharing_consent_missing:
            message = (
                "This case should be reviewed by a dermatologist, but the patient has not consented to "
                "sharing (scope 'specialist_sharing'). Record that consent to send it."
            )
        return CaseOut(
            id=case.id,
            patient_id=case.patient_id,
            state=case.state,
            version=case.version,
            age=case.age,
            sex=case.sex,
            site=case.site,
            history=case.history,
            concern=case.concern,
            wants_specialist=case.wants_specialist,
            notes=notes,
            images=[ImageOut.model_validate(i) for i in images],
            analysis=AnalysisOut(
                status=job.status if job else "pending",
                attempts=job.attempts if job else 0,
                last_error=job.last_error if job else None,
                next_attempt_at=job.next_attempt_at if job and job.status == "pending" else None,
                results=[ResultOut.model_validate(r) for r in results],
            ),
            triage=TriageOut(
                level=case.triage_level,
                rule=case.triage_rule,
                detail=case.triage_detail,
                sharing_consent_missing=case.sharing_consent_missing,
                message=message,
            ),
            claimed_by=case.claimed_by,
            claim_expires_at=case.claim_expires_at,
            answer=answer,
            transitions=[TransitionOut.model_validate(t) for t in transitions],
            lesion_id=case.lesion_id,
            lesion_change=LesionChangeOut.model_validate(lesion_change) if lesion_change else None,
            created_at=case.created_at,
            updated_at=case.updated_at,
        )

    def heatmap(self, session: Session, actor: Actor, case_id: uuid.UUID, image_id: uuid.UUID) -> bytes:
        """The image's heatmap PNG (where the model looked, not a diagnosis), read like the image.

        The analysis keeps only the top class's 7x7 map; the first view draws its overlay on the stored
        image (reduced to the model's 224x224 input, as the model saw it) and keeps the PNG sealed with
        the patient's key like the images, written before the caller's commit names it. Later views
        read it. Two first views at once each draw one; the row names the later, the orphan sweep
        removes the other."""
        case = self.get(session, actor, case_id, audit=False)
        result = session.exec(
            select(AnalysisResult).where(
                AnalysisResult.case_id == case.id, AnalysisResult.image_id == image_id
            )
        ).first()
        if result is None or not (result.heatmap_blob_key or result.class_map):
            raise NotFound(f"no heatmap for image {image_id} of case {case_id}")
        if result.heatmap_blob_key:
            missing = f"the heatmap of image {image_id} of case {case_id} is missing from storage"
            return self._read_blob(
                session, actor, case, result.heatmap_blob_key, image_id, "case.heatmap_view", missing
            )
        image = session.get(CaseImage, image_id)
        assert image is not None  # a result refers to its image (foreign key)
        missing = f"image {image_id} of case {case_id} is missing from storage"
        data = self._read_blob(session, actor, case, image.blob_key, image_id, "case.heatmap_view", missing)
        with metrics.stage("heatmap"):
            png = heatmap_png(data, np.asarray(result.class_map))
            key = heatmap_key(case.patient_id, case.id, image.position)
            self.blobs.put(key, self.vault.encrypt(session, case.patient_id, f"blob:{key}", png))
        result.heatmap_blob_key = key
        session.add(result)
        return png

    def image(self, session: Session, actor: Actor, case_id: uuid.UUID, image_id: uuid.UUID) -> bytes:
        case = self.get(session, actor, case_id, audit=False)
        image = session.exec(
            select(CaseImage).where(CaseImage.case_id == case.id, CaseImage.id == image_id)
        ).first()
        if image is None:
            raise NotFound(f"image {image_id} not found in case {case_id}")
        missing = f"image {image_id} of case {case_id} is missing from storage"
        return self._read_blob(session, actor, case, image.blob_key, image.id, "case.image_view", missing)

    def _read_blob(
        self,
        session: Session,
        actor: Actor,
        case: Case,
        key: str,
        image_id: uuid.UUID,
        action: str,
        missing: str,
    ) -> bytes:
        """Fetch and decrypt a case blob and audit the view; a missing blob is a 404 that never names the
        internal blob path."""
        try:
            ciphertext = self.blobs.get(key)
        except BlobNotFound:
            raise NotFound(missing) from None
        data = self.vault.decrypt(session, case.patient_id, f"blob:{key}", ciphertext)
        record(
            session,
            actor.ctx,
            action,
            resource_type="case_image",
            resource_id=image_id,
            patient_id=case.patient_id,
        )
        return data

    # -- queue ---------------------------------------------------------------------------------
    def waiting(self) -> SelectOfScalar[Case]:
        """Unclaimed waiting cases whose patient is not erased and consents to sharing right now."""
        now = utcnow()
        return select(Case).where(
            Case.state == CaseState.awaiting_specialist.value,
            or_(Case.claimed_by.is_(None), Case.claim_expires_at < now),  # type: ignore[union-attr, operator]
            Case.patient_id.not_in(erased_patients()),  # type: ignore[attr-defined]
            Case.patient_id.in_(sharing_consented()),  # type: ignore[attr-defined]
        )

    def queue(self, session: Session, actor: Actor, *, after: list | None, limit: int) -> list[QueueItem]:
        query = self.waiting().order_by(URGENCY_RANK, Case.queued_at, Case.id)
        if after:  # (rank, queued_at, case id), already parsed by `decode_cursor`
            rank, moment, case_id = after
            query = query.where(
                or_(
                    URGENCY_RANK > rank,
                    (URGENCY_RANK == rank) & (Case.queued_at > moment),
                    (URGENCY_RANK == rank) & (Case.queued_at == moment) & (Case.id > case_id),
                )
            )
        cases = list(session.exec(query.limit(limit)))
        items = []
        results: dict[uuid.UUID, list[AnalysisResult]] = {case.id: [] for case in cases}
        for result in session.exec(select(AnalysisResult).where(AnalysisResult.case_id.in_(list(results)))):  # type: ignore[attr-defined]
            results[result.case_id].append(result)
        for case in cases:
            top = max(results[case.id], key=lambda r: r.malignant_probability, default=None)
            items.append(
                QueueItem(
                    case_id=case.id,
                    triage_level=case.triage_level or "review",
                    triage_rule=case.triage_rule,
                    waiting_since=case.queued_at or case.created_at,
                    age=case.age,
                    sex=case.sex,
                    site=case.site,
                    concern=case.concern,
                    ai_top_label=top.top_label if top else None,
                    ai_top_probability=top.top_probability if top else None,
                    image_count=len(results[case.id]),
                )
            )
        record(session, actor.ctx, "queue.view", resource_type="queue", detail={"items": len(items)})
        return items

    def claim(self, session: Session, actor: Actor, case_id: uuid.UUID) -> Case:
        case = session.exec(select(Case).where(Case.id == case_id).with_for_update()).first()
        if case is None or case.state != CaseState.awaiting_specialist:
            raise NotFound(f"case {case_id} is not waiting in the queue")
        self._refuse_if_erased(session, actor, case, "case.claim")
        now = utcnow()
        if (
            case.claimed_by not in (None, actor.user.id)
            and case.claim_expires_at
            and case.claim_expires_at > now
        ):
            raise Conflict(
                f"case {case_id} is already claimed by another dermatologist until {case.claim_expires_at}"
            )
        consent.require(session, case.patient_id, Scope.specialist_sharing)
        case.claimed_by, case.claim_expires_at = actor.user.id, now + timedelta(minutes=self.claim_minutes)
        touch(case)
        session.add(case)
        record(
            session,
            actor.ctx,
            "case.claim",
            resource_type="case",
            resource_id=case.id,
            patient_id=case.patient_id,
            detail={"expires_at": case.claim_expires_at.isoformat()},
        )
        return case

    def release(self, session: Session, actor: Actor, case_id: uuid.UUID) -> Case:
        case = self._held(session, actor, case_id)
        case.claimed_by, case.claim_expires_at = None, None
        touch(case)
        session.add(case)
        record(
            session,
            actor.ctx,
            "case.release",
            resource_type="case",
            resource_id=case.id,
            patient_id=case.patient_id,
        )
        return case

    def _refuse_if_erased(self, session: Session, actor: Actor, case: Case, action: str) -> None:
        if _erased(session, case.patient_id):
            record(
                session,
                actor.ctx,
                action,
                outcome="denied",
                resource_type="case",
                resource_id=case.id,
                patient_id=case.patient_id,
                reason="patient erased",
            )
            raise Gone(f"case {case.id} belonged to a patient whose data was erased")

    def _held(self, session: Session, actor: Actor, case_id: uuid.UUID) -> Case:
        case = session.exec(select(Case).where(Case.id == case_id).with_for_update()).first()
        if case is None or (case.claimed_by != actor.user.id and case.answered_by != actor.user.id):
            raise NotFound(f"case {case_id} not found")
        self._refuse_if_erased(session, actor, case, "case.update")
        if case.state != CaseState.awaiting_specialist:
            raise Conflict(f"case {case_id} is {case.state}, not awaiting a specialist")
        if (
            case.claimed_by != actor.user.id
            or case.claim_expires_at is None
            or case.claim_expires_at <= utcnow()
        ):
            raise Conflict("your claim on this case expired; claim it again from the queue")
        return case

    def answer(
        self, session: Session, actor: Actor, case_id: uuid.UUID, body: AnswerCreate, if_match: str | None
    ) -> Case:
        if body.diagnosis == "other" and not body.diagnosis_text:
            raise ValidationFailed("diagnosis 'other' needs diagnosis_text")
        if body.management == "monitor" and body.follow_up_weeks is None:
            raise ValidationFailed("management 'monitor' needs follow_up_weeks")
        case = self._held(session, actor, case_id)
        check_version(case, if_match)
        answer = Answer(
            case_id=case.id,
            dermatologist_id=actor.user.id,
            diagnosis=body.diagnosis,
            diagnosis_text=body.diagnosis_text,
            management=body.management,
            follow_up_weeks=body.follow_up_weeks,
        )
        if body.note:
            answer.note_sealed = self.vault.encrypt(
                session, case.patient_id, f"answer:{answer.id}", body.note.encode()
            )
        session.add(answer)
        visits.schedule_follow_up(session, case, body.follow_up_weeks)
        case.answered_by, case.claimed_by, case.claim_expires_at = actor.user.id, None, None
        transition(session, case, CaseState.answered, actor.ctx)
        record(
            session,
            actor.ctx,
            "case.answer",
            resource_type="case",
            resource_id=case.id,
            patient_id=case.patient_id,
            detail={"diagnosis": body.diagnosis, "management": body.management},
        )
        return case

    def close(self, session: Session, actor: Actor, case_id: uuid.UUID, if_match: str | None) -> Case:
        case = self.get(session, actor, case_id, audit=False)
        check_version(case, if_match)
        if case.state not in (CaseState.analysed, CaseState.answered):
            raise Conflict(f"a case that is {case.state} cannot be closed")
        transition(session, case, CaseState.closed, actor.ctx)
        return case


# The order in which a submission's rows may be inserted: each refers only to rows of the groups before
# it. (The models declare foreign keys but no ORM relationships, so the ORM would not order them.)
_INSERT_ORDER: tuple[tuple[type, ...], ...] = (
    (Lesion,),
    (Case,),
    (CaseImage, CaseTransition, AnalysisJob),
    (AnalysisResult, LesionChange),
)


_ORDERED = tuple(kind for group in _INSERT_ORDER for kind in group)


def _write(session: Session) -> None:
    """Insert a submission's new rows group by group in `_INSERT_ORDER`, one multi-row INSERT per table
    (SQLAlchemy Core: the rows were built and checked as models; the ORM's unit of work would cost more
    Python than the inserts themselves, under the write lock), then attached to the session as if just
    loaded, so that expiring or refreshing them reads the database. Anything else goes through the ORM."""
    pending = list(session.new)
    for row in pending:
        session.expunge(row)
    session.flush()  # a follow-up's lesion (stored already) changes: an ORM update, taking the write lock
    insert_in_order(session, pending, _ORDERED)
    for row in pending:
        if type(row) in _ORDERED:  # now stored: attached again as if loaded, so a refresh or expiry works
            make_transient_to_detached(row)
        session.add(row)
    session.flush()


def heatmap_key(patient_id: uuid.UUID, case_id: uuid.UUID, position: int) -> str:
    """Like an image's key (same folder: no new directory to create and fsync), a fresh name per write."""
    return f"patients/{patient_id}/images/{case_id}-{position}-{uuid.uuid4().hex}.heatmap.png.enc"


def check_version(case: Case, if_match: str | None) -> None:
    """Optimistic concurrency: writes that change a case must name the version they saw (If-Match)."""
    if if_match is None:
        raise PreconditionFailed(
            "send If-Match with the case's ETag (its version) so no change is overwritten"
        )
    if if_match.strip().strip('"').removeprefix("W/").strip('"') != str(case.version):
        raise PreconditionFailed(f"the case changed (now version {case.version}); reload it and try again")
