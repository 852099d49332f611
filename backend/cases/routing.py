"""State transitions (each recorded with who and when) and routing of analysed cases to the queue."""

from __future__ import annotations

from sqlmodel import Session

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


def route(session: Session, case: Case, ctx: AuditContext, *, analysed: bool) -> None:
    """After analysis: urgent and review cases enter the queue when the patient consents to sharing."""
    if analysed and case.state in (CaseState.received, CaseState.analysing):
        transition(
            session, case, CaseState.analysed, ctx, note=f"triage {case.triage_level} ({case.triage_rule})"
        )
    if case.triage_level not in (TriageLevel.urgent, TriageLevel.review) or case.state != CaseState.analysed:
        return
    active, _ = consent.status(session, case.patient_id)[Scope.specialist_sharing]
    if active is None:
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
