"""Running one analysis job: decrypt the case's images, classify, store results, triage, route.

Each result keeps the top class's class-activation map (7x7, ``AnalysisResult.class_map``) when the model
gives one: where the model looked, not a diagnosis. Its colour overlay is drawn only when somebody opens
it (`CaseService.heatmap`), so the analysis itself spends nothing on pictures nobody may look at.

A job is claimed with a lease (status ``running`` until ``lease_expires_at``). A worker that dies keeps
its lease until it expires; then any worker may claim the job again, so a crash delays analysis but never
loses it. An inference outage reschedules the job with exponential backoff; the case shows why it waits.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from sqlalchemy import or_
from sqlmodel import Session, select

from backend.audit.service import record
from backend.cases.models import AnalysisJob, AnalysisResult, Case, CaseImage
from backend.cases.routing import route
from backend.cases.triage import ImageEvidence, TriageRules, decide
from backend.consent import service as consent
from backend.consent.models import Scope
from backend.core import metrics
from backend.core.actor import SYSTEM
from backend.core.clock import utcnow
from backend.core.logging import log
from backend.crypto.envelope import Vault
from backend.inference.base import Classifier, InferenceError, Prediction
from backend.inference.batching import DynamicBatcher
from backend.inference.preprocess import batch, load_image
from backend.lesions import visits

BACKOFF_BASE_SECONDS = 2.0
BACKOFF_MAX_SECONDS = 300.0


@dataclass(frozen=True)
class Inference:
    """The outcome of one inference call: predictions, or the error that stopped it."""

    predictions: list[Prediction] | None = None
    error: Exception | None = None


def stored_class_map(prediction: Prediction) -> list[list[float]] | None:
    """The top class's class-activation map as the result row keeps it (JSON rows, 4 decimals)."""
    if prediction.class_map is None:
        return None
    return np.round(np.asarray(prediction.class_map, np.float64), 4).tolist()


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(BACKOFF_BASE_SECONDS * 2 ** max(attempts - 1, 0), BACKOFF_MAX_SECONDS))


class Analyzer:
    def __init__(
        self,
        session_factory: Callable[[], Session],
        vault: Vault,
        blobs,  # type: ignore[no-untyped-def]
        classifier: Callable[[], Classifier],
        rules: TriageRules,
        *,
        lease: timedelta = timedelta(minutes=2),
        batcher: DynamicBatcher | None = None,
    ) -> None:
        self.batcher = batcher  # shares model calls between concurrent analyses (None: one call each)
        self.lease = lease  # how long a worker may hold a job before another may take it over
        self.session_factory = session_factory
        self.vault = vault
        self.blobs = blobs
        self.classifier = classifier
        self.rules = rules

    def claim_due(self, limit: int = 4) -> list[uuid.UUID]:
        """Take up to ``limit`` due jobs (pending and due, or running with an expired lease)."""
        now = utcnow()
        with self.session_factory() as session:
            query = (
                select(AnalysisJob)
                .where(
                    or_(
                        (AnalysisJob.status == "pending") & (AnalysisJob.next_attempt_at <= now),
                        (AnalysisJob.status == "running") & (AnalysisJob.lease_expires_at < now),  # type: ignore[operator]
                    )
                )
                .order_by(AnalysisJob.next_attempt_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            jobs = list(session.exec(query))
            for job in jobs:
                job.status, job.lease_expires_at = "running", now + self.lease
                job.attempts += 1
                job.updated_at = now
                session.add(job)
            session.commit()
            return [job.id for job in jobs]

    def claim(self, job_id: uuid.UUID) -> bool:
        """Claim one specific job if it is due (used by queue workers that were handed its id)."""
        now = utcnow()
        with self.session_factory() as session:
            job = session.exec(select(AnalysisJob).where(AnalysisJob.id == job_id).with_for_update()).first()
            if job is None or job.status in ("done", "failed"):
                return False
            if job.status == "running" and job.lease_expires_at and job.lease_expires_at > now:
                return False  # another worker holds it
            job.status, job.lease_expires_at = "running", now + self.lease
            job.attempts, job.updated_at = job.attempts + 1, now
            session.add(job)
            session.commit()
            return True

    def run(self, job_id: uuid.UUID) -> str:
        """Run a claimed job. Returns its new status: done, pending (will retry) or failed.

        Inference runs outside any database transaction (SQLite has a single writer), between a short
        read and a short write; the write checks that the job is still this attempt's."""
        try:
            with self.session_factory() as session:
                job = session.get(AnalysisJob, job_id)
                case = session.get(Case, job.case_id) if job else None
                if job is None or case is None:
                    return "failed"
                attempt, patient_id = job.attempts, case.patient_id
                consent.require(session, patient_id, Scope.ai_analysis)
                images = list(
                    session.exec(
                        select(CaseImage).where(CaseImage.case_id == case.id).order_by(CaseImage.position)
                    )
                )
                image_ids = [i.id for i in images]
                followup = visits.load_followup(session, self.vault, self.blobs, case)
                pixels = batch(
                    [
                        load_image(
                            self.vault.decrypt(
                                session, patient_id, f"blob:{i.blob_key}", self.blobs.get(i.blob_key)
                            )
                        )
                        for i in images
                    ]
                )
            predictions = self.predict(pixels)
            measured = visits.measure(followup) if followup else None
        except consent.ConsentRequired as exc:
            return self._fail(job_id, str(exc.detail))
        except InferenceError as exc:
            if not exc.retryable:
                return self._fail(job_id, f"inference rejected the request: {exc}")
            return self._retry(job_id, f"inference unavailable: {exc}")
        except Exception as exc:  # a blob store or database hiccup: retry later, keep the reason
            log.exception("analysis failed", job_id=str(job_id))
            return self._retry(job_id, f"{type(exc).__name__}: {exc}")

        with self.session_factory() as session:
            job = session.exec(select(AnalysisJob).where(AnalysisJob.id == job_id).with_for_update()).one()
            if job.status != "running" or job.attempts != attempt:
                return job.status  # the lease expired and another worker took over: its result counts
            case = session.get(Case, job.case_id)
            images = [session.get(CaseImage, image_id) for image_id in image_ids]
            self.store(session, case, images, predictions, measured)
            job.status, job.lease_expires_at, job.last_error, job.updated_at = "done", None, None, utcnow()
            session.add(job)
            with metrics.stage("commit"):
                session.commit()
            return "done"

    def predict(self, pixels: np.ndarray) -> list[Prediction]:
        """Classify ``pixels``, in a batch shared with concurrent callers when there is a batcher."""
        classifier = self.classifier()
        if self.batcher is not None:
            return self.batcher.predict(classifier, pixels)
        with metrics.stage("inference"):
            return classifier.predict_batch(pixels)

    def start(self, pixels: np.ndarray) -> Callable[[], Inference]:
        """Start classifying ``pixels`` and return a call that waits for the outcome, a failure included
        (for a submission that analyses inline and writes its blobs meanwhile)."""
        try:
            classifier = self.classifier()
            if self.batcher is not None:
                waiting = self.batcher.submit(classifier, pixels)
            else:
                with metrics.stage("inference"):
                    predictions = classifier.predict_batch(pixels)

                def waiting() -> list[Prediction]:
                    return predictions
        except Exception as exc:
            error = exc

            def waiting() -> list[Prediction]:
                raise error

        return lambda: self._outcome(waiting)

    @staticmethod
    def _outcome(waiting: Callable[[], list[Prediction]]) -> Inference:
        try:
            return Inference(predictions=waiting())
        except Exception as exc:
            if not isinstance(exc, InferenceError):
                log.exception("inline analysis failed")
            return Inference(error=exc)

    def settle(
        self,
        session: Session,
        job: AnalysisJob,
        case: Case,
        images: list[CaseImage],
        outcome: Inference,
        *,
        sharing: bool | None = None,
    ) -> None:
        """Record an inline analysis in the submission's own transaction: results, triage and routing
        when it succeeded; otherwise the job stays pending with a backoff (or fails if the model rejected
        the request), exactly as when a worker's attempt ends that way."""
        now = utcnow()
        job.attempts, job.updated_at = 1, now
        error = outcome.error
        if error is None:
            assert outcome.predictions is not None
            self.store(session, case, images, outcome.predictions, sharing=sharing)
            job.status = "done"
        elif isinstance(error, InferenceError) and not error.retryable:
            job.status, job.last_error = "failed", f"inference rejected the request: {error}"[:1000]
            record(
                session,
                SYSTEM,
                "case.analyse",
                outcome="failed",
                resource_type="case",
                resource_id=case.id,
                patient_id=case.patient_id,
                reason=job.last_error,
            )
        else:
            reason = (
                f"inference unavailable: {error}"
                if isinstance(error, InferenceError)
                else (f"{type(error).__name__}: {error}")
            )
            job.status, job.last_error = "pending", reason[:1000]
            job.next_attempt_at = now + backoff(1)
            log.warning("analysis postponed", case_id=str(case.id), attempts=1, reason=reason[:200])
        session.add(job)

    def store(
        self,
        session: Session,
        case: Case,
        images: list[CaseImage],
        predictions,  # type: ignore[no-untyped-def]
        measured: visits.Measured | None = None,
        *,
        sharing: bool | None = None,
    ) -> None:
        """Results (with their class-activation maps), the lesion change measured for a follow-up,
        triage and routing, in ``session`` (``sharing``: the patient's sharing consent, if read already)."""
        evidence = []
        for image, prediction in zip(images, predictions, strict=True):
            probs = prediction.probabilities
            malignant = sum(probs.get(c, 0.0) for c in self.rules.malignant_classes)
            session.add(
                AnalysisResult(
                    case_id=case.id,
                    image_id=image.id,
                    probabilities=probs,
                    top_label=prediction.top_label,
                    top_probability=prediction.top_probability,
                    malignant_probability=malignant,
                    model_name=prediction.model_name,
                    model_version=prediction.model_version,
                    inference_ms=prediction.inference_ms,
                    class_map=stored_class_map(prediction),
                )
            )
            evidence.append(ImageEvidence(probs, image.quality_ok))
        if measured is not None:
            visits.store_change(session, measured, predictions[0].probabilities)
        with metrics.stage("triage"):
            self._triage(session, case, evidence, predictions, measured, sharing)

    def _triage(
        self,
        session: Session,
        case: Case,
        evidence: list[ImageEvidence],
        predictions,  # type: ignore[no-untyped-def]
        measured: visits.Measured | None,
        sharing: bool | None,
    ) -> None:
        decision = decide(
            self.rules,
            evidence,
            concern=case.concern,
            wants_specialist=case.wants_specialist,
            lesion_change=measured.triage_evidence if measured else None,
        )
        case.triage_level, case.triage_rule, case.triage_detail = (
            decision.level.value,
            decision.rule,
            decision.detail,
        )
        route(session, case, SYSTEM, analysed=True, sharing=sharing)
        record(
            session,
            SYSTEM,
            "case.analyse",
            resource_type="case",
            resource_id=case.id,
            patient_id=case.patient_id,
            detail={
                "level": decision.level.value,
                "rule": decision.rule,
                "model": f"{predictions[0].model_name}:{predictions[0].model_version}",
            },
        )

    def _retry(self, job_id: uuid.UUID, reason: str) -> str:
        with self.session_factory() as session:
            job = session.get(AnalysisJob, job_id)
            job.status, job.lease_expires_at = "pending", None
            job.next_attempt_at = utcnow() + backoff(job.attempts)
            job.last_error, job.updated_at = reason[:1000], utcnow()
            session.add(job)
            session.commit()
            log.warning(
                "analysis postponed", case_id=str(job.case_id), attempts=job.attempts, reason=reason[:200]
            )
        return "pending"

    def _fail(self, job_id: uuid.UUID, reason: str) -> str:
        with self.session_factory() as session:
            job = session.get(AnalysisJob, job_id)
            case = session.get(Case, job.case_id)
            job.status, job.lease_expires_at, job.last_error, job.updated_at = (
                "failed",
                None,
                reason[:1000],
                utcnow(),
            )
            session.add(job)
            record(
                session,
                SYSTEM,
                "case.analyse",
                outcome="failed",
                resource_type="case",
                resource_id=case.id,
                patient_id=case.patient_id,
                reason=reason[:1000],
            )
            session.commit()
        return "failed"

    def run_due(self, limit: int = 4) -> list[uuid.UUID]:
        """Claim and run due jobs; returns the ids of the jobs it ran."""
        job_ids = self.claim_due(limit)
        for job_id in job_ids:
            self.run(job_id)
        return job_ids

    def status(self, job_id: uuid.UUID) -> str | None:
        with self.session_factory() as session:
            job = session.get(AnalysisJob, job_id)
            return job.status if job else None
