"""State transitions (each recorded with who and when) and routing of analysed cases to the queue."""

from __future__ import annotations

import uuid

from sqlmodel import Session, select

from backend.audit.service import record
from backend.cases.models import Case, CaseState, CaseTransition, TriageLevel
from backend.consent import service as consent
from backend.consent.models import Scope
from backend.core.actor import AuditContext
from backend.core.clock import utcnow


def transition(
    session: Session, case: Case, to_state: CaseState, ctx: AuditContext, note: str | None = None
) -> None:
    session.add(
        CaseTransition(
            case_id=case.id,
            from_state=case.state,
            to_state=to_state.value,
            actor_id=ctx.actor_id,
            actor_role=ctx.actor_role,
            note=note,
        )
    )
    record(
        session,
        ctx,
        "case.transition",
        resource_type="case",
        resource_id=case.id,
        patient_id=case.patient_id,
        detail={"from": case.state, "to": to_state.value},
    )
    case.state = to_state.value
    touch(case)
    session.add(case)


def touch(case: Case) -> None:
    case.version += 1
    case.updated_at = utcnow()


def route(
    session: Session, case: Case, ctx: AuditContext, *, analysed: bool, sharing: bool | None = None
) -> None:
    """After analysis: urgent and review cases enter the queue when the patient consents to sharing.

    ``sharing``: whether the patient consents to ``specialist_sharing``, when the caller has read it
    already (a submission reads every scope once, before its images are processed); None reads it now.
    The queue applies the consent again whenever it is read, so a withdrawal in between shows nothing."""
    if analysed and case.state in (CaseState.received, CaseState.analysing):
        transition(
            session, case, CaseState.analysed, ctx, note=f"triage {case.triage_level} ({case.triage_rule})"
        )
    if case.triage_level not in (TriageLevel.urgent, TriageLevel.review) or case.state != CaseState.analysed:
        return
    if sharing is None:
        sharing = consent.status(session, case.patient_id)[Scope.specialist_sharing][0] is not None
    if not sharing:
        case.sharing_consent_missing = True
        touch(case)
        session.add(case)
        record(
            session,
            ctx,
            "case.route",
            outcome="denied",
            resource_type="case",
            resource_id=case.id,
            patient_id=case.patient_id,
            reason="missing consent scope 'specialist_sharing'",
        )
        return
    case.sharing_consent_missing = False
    case.queued_at = utcnow()
    transition(session, case, CaseState.awaiting_specialist, ctx, note=f"queued as {case.triage_level}")


def route_awaiting_consent(session: Session, ctx: AuditContext, patient_id: uuid.UUID) -> int:
    """Route the patient's analysed cases that triage sent to a dermatologist but that waited for the
    ``specialist_sharing`` consent just recorded (routing otherwise happens only in the analysis job).
    Audited like the job's routing, plus a ``case.route`` event naming the consent as the trigger."""
    waiting = session.exec(
        select(Case)
        .where(
            Case.patient_id == patient_id,
            Case.state == CaseState.analysed.value,
            Case.triage_level.in_([TriageLevel.urgent.value, TriageLevel.review.value]),  # type: ignore[union-attr]
        )
        .with_for_update()
    ).all()
    routed = 0
    for case in waiting:
        route(session, case, ctx, analysed=False)
        if case.state == CaseState.awaiting_specialist:
            routed += 1
            record(
                session,
                ctx,
                "case.route",
                resource_type="case",
                resource_id=case.id,
                patient_id=case.patient_id,
                detail={"trigger": "consent.grant", "level": case.triage_level},
            )
    return routed
