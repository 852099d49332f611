"""Consent: versioned documents, grants and withdrawals per scope, and enforcement.

Enforcement is here, in the backend: `require(session, patient_id, scope)` is called before anything
is analysed (ai_analysis), routed to a dermatologist (specialist_sharing) or exported for research
(research), and refuses with an error that names the missing scope.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import io
import uuid
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError
from sqlalchemy import and_, bindparam, exists, or_
from sqlalchemy.orm import aliased
from sqlmodel import Session, select

from backend.audit.service import record
from backend.consent.models import ConsentDocument, ConsentEvent, Method, Scope
from backend.consent.schemas import ConsentCreate, DocumentCreate
from backend.core.actor import Actor
from backend.core.errors import Conflict, DermaLinkError, NotFound, ValidationFailed
from backend.patients.models import Patient

GRANT, WITHDRAW = "grant", "withdraw"
MAX_SIGNATURE_PIXELS = 4_000_000


class ConsentRequired(DermaLinkError):
    """The patient has no active consent for the scope an action needs."""

    status_code, type = 409, "consent_required"


@dataclass(frozen=True)
class ActiveConsent:
    event: ConsentEvent
    document: ConsentDocument


def publish(session: Session, actor: Actor, body: DocumentCreate) -> ConsentDocument:
    exists = session.exec(
        select(ConsentDocument.id).where(
            ConsentDocument.version == body.version, ConsentDocument.language == body.language
        )
    ).first()
    if exists:
        raise Conflict(
            f"consent version {body.version} ({body.language}) is already published and cannot change"
        )
    digest = hashlib.sha256(f"{body.title}\n\n{body.text}".encode()).hexdigest()
    document = ConsentDocument(
        version=body.version,
        language=body.language,
        title=body.title,
        text=body.text,
        content_hash=digest,
        scopes=",".join(s.value for s in dict.fromkeys(body.scopes)),
        requires_reconsent=body.requires_reconsent,
        published_by=actor.user.id,
    )
    session.add(document)
    session.flush()
    record(
        session,
        actor.ctx,
        "consent_document.publish",
        resource_type="consent_document",
        resource_id=document.id,
        detail={"version": body.version, "language": body.language},
    )
    return document


def get_document(session: Session, document_id: uuid.UUID) -> ConsentDocument:
    document = session.get(ConsentDocument, document_id)
    if document is None:
        raise NotFound(f"consent document {document_id} not found")
    return document


def _superseding_scopes(session: Session, document: ConsentDocument) -> set[str]:
    """The scopes of later documents in ``document``'s language that require re-consent: each of them is
    superseded for ``document``'s grants."""
    later = session.exec(
        select(ConsentDocument.scopes).where(
            ConsentDocument.language == document.language,
            ConsentDocument.published_at > document.published_at,
            ConsentDocument.requires_reconsent.is_(True),  # type: ignore[attr-defined]
            ConsentDocument.withdrawn_at.is_(None),  # type: ignore[union-attr]
        )
    )
    return {scope for scopes in later for scope in scopes.split(",")}


def history(session: Session, patient_id: uuid.UUID) -> list[ConsentEvent]:
    query = select(ConsentEvent).where(ConsentEvent.patient_id == patient_id)
    return list(session.exec(query.order_by(ConsentEvent.recorded_at, ConsentEvent.id)))  # type: ignore[arg-type]


def status(session: Session, patient_id: uuid.UUID) -> dict[Scope, tuple[ActiveConsent | None, bool]]:
    """For each scope: the active grant (or None), and whether a newer version requires re-consent."""
    latest: dict[str, ConsentEvent] = {}
    for event in history(session, patient_id):
        latest[event.scope] = event
    result: dict[Scope, tuple[ActiveConsent | None, bool]] = {}
    superseding: dict[uuid.UUID, set[str]] = {}  # per document: one query, however many scopes it granted
    for scope in Scope:
        event = latest.get(scope.value)
        if event is None or event.kind != GRANT or event.document_id is None:
            result[scope] = (None, False)
            continue
        document = session.get(ConsentDocument, event.document_id)
        assert document is not None
        if document.id not in superseding:
            superseding[document.id] = _superseding_scopes(session, document)
        if scope.value in superseding[document.id]:
            result[scope] = (None, True)
        else:
            result[scope] = (ActiveConsent(event, document), False)
    return result


def patients_consenting(scope: Scope, patient_id: object = None):  # type: ignore[no-untyped-def]
    """The ids of patients with an active consent to ``scope`` (only ``patient_id``'s, when given: an id
    or a bound parameter), as a subquery: the rule of `status` in SQL, so that visibility queries can
    apply it (`visible_patients`, `visible_cases`, the queue) and `consenting` can ask for one patient in
    one query.

    Active: the patient's latest event for the scope (by recorded_at, then id) is a grant, and no newer
    published, non-withdrawn document in the grant's language that covers the scope requires re-consent."""
    query = _patients_consenting(scope)
    return query if patient_id is None else query.where(query.selected_columns[0] == patient_id)


@functools.cache
def _patients_consenting(scope: Scope):  # type: ignore[no-untyped-def]
    # Built once per scope: statements are immutable, and building this one (four aliases, two
    # correlated subqueries) costs more Python than running it.
    grant, later = aliased(ConsentEvent), aliased(ConsentEvent)
    document, newer = aliased(ConsentDocument), aliased(ConsentDocument)
    superseded = exists().where(
        newer.language == document.language,
        newer.published_at > document.published_at,
        newer.requires_reconsent.is_(True),  # type: ignore[attr-defined]
        newer.withdrawn_at.is_(None),  # type: ignore[union-attr]
        or_(
            newer.scopes == scope.value,
            newer.scopes.startswith(f"{scope.value},"),  # type: ignore[attr-defined]
            newer.scopes.endswith(f",{scope.value}"),  # type: ignore[attr-defined]
            newer.scopes.contains(f",{scope.value},"),  # type: ignore[attr-defined]
        ),
    )
    overtaken = exists().where(
        later.patient_id == grant.patient_id,
        later.scope == grant.scope,
        or_(
            later.recorded_at > grant.recorded_at,
            and_(later.recorded_at == grant.recorded_at, later.id > grant.id),
        ),
    )
    return (
        select(grant.patient_id)
        .join(document, document.id == grant.document_id)
        .where(grant.scope == scope.value, grant.kind == GRANT, ~overtaken, ~superseded)
    )


@functools.cache
def _consenting(scopes: tuple[Scope, ...]):  # type: ignore[no-untyped-def]
    patient = bindparam("patient_id")
    return select(*(exists(patients_consenting(scope, patient)) for scope in scopes))


def consenting(session: Session, patient_id: uuid.UUID, *scopes: Scope) -> dict[Scope, bool]:
    """Whether the patient consents to each scope right now, in one query (the rule of `status`, without
    reading the patient's whole history: for the hot path of a submission). `require` says why not."""
    row = session.exec(_consenting(scopes), params={"patient_id": patient_id}).one()
    values = tuple(row) if len(scopes) > 1 else (row,)  # one column comes back as a plain value
    return {scope: bool(value) for scope, value in zip(scopes, values, strict=True)}


def require(session: Session, patient_id: uuid.UUID, scope: Scope) -> ActiveConsent:
    active, needs_reconsent = status(session, patient_id)[scope]
    if active is None:
        raise _missing(patient_id, scope, needs_reconsent)
    return active


def require_consenting(
    session: Session, patient_id: uuid.UUID, needed: Scope, *also: Scope
) -> dict[Scope, bool]:
    """Refuse (`ConsentRequired`) unless the patient consents to ``needed``, and say whether they consent
    to each of ``also``: one query when consent is there (`consenting`); the history is read only to
    say why it is not."""
    consents = consenting(session, patient_id, needed, *also)
    if not consents[needed]:
        raise _missing(patient_id, needed, status(session, patient_id)[needed][1])
    return consents


def _missing(patient_id: uuid.UUID, scope: Scope, needs_reconsent: bool) -> ConsentRequired:
    why = "a newer consent version requires re-consent" if needs_reconsent else "no active consent"
    return ConsentRequired(f"missing consent scope '{scope.value}' for patient {patient_id}: {why}")


def decode_signature(encoded: str) -> bytes:
    """Check that the signature is a real PNG or JPEG image and re-encode it as PNG (no metadata)."""
    try:
        raw = base64.b64decode(encoded, validate=True)
    except binascii.Error as exc:
        raise ValidationFailed("signature_png_base64 is not valid base64") from exc
    try:
        with Image.open(io.BytesIO(raw)) as image:
            if image.format not in ("PNG", "JPEG"):
                raise ValidationFailed(f"signature must be PNG or JPEG, got {image.format}")
            if image.width * image.height > MAX_SIGNATURE_PIXELS:
                raise ValidationFailed("signature image is too large")
            image.load()
            out = io.BytesIO()
            image.convert("RGBA" if "A" in image.getbands() else "RGB").save(out, format="PNG")
            return out.getvalue()
    except (UnidentifiedImageError, OSError) as exc:
        raise ValidationFailed("signature is not a readable PNG or JPEG image") from exc


def grant(
    session: Session, actor: Actor, patient: Patient, body: ConsentCreate, signature_blob: str | None
) -> list[ConsentEvent]:
    document = get_document(session, body.document_id)
    if document.withdrawn_at is not None:
        raise ValidationFailed(f"consent version {document.version} was withdrawn and cannot be used")
    if body.method is Method.verbal and not body.witness_name:
        raise ValidationFailed("verbal consent needs a named witness (witness_name)")
    if body.method is Method.signed and signature_blob is None:
        raise ValidationFailed("signed consent needs the signature image (signature_png_base64)")
    uncovered = [s.value for s in body.scopes if s.value not in document.scopes.split(",")]
    if uncovered:
        raise ValidationFailed(
            f"consent version {document.version} does not cover scope(s) {', '.join(uncovered)}"
        )
    if body.scopes[0].value in _superseding_scopes(session, document):
        raise ValidationFailed(f"consent version {document.version} was superseded; use the newest version")
    current = status(session, patient.id)
    events = []
    for scope in dict.fromkeys(body.scopes):
        active, _ = current[scope]
        if active is not None and active.document.id == document.id:
            raise Conflict(
                f"consent for scope '{scope.value}' under version {document.version} is already recorded"
            )
        event = ConsentEvent(
            patient_id=patient.id,
            scope=scope.value,
            kind=GRANT,
            document_id=document.id,
            method=body.method.value,
            witness_name=body.witness_name,
            signature_blob=signature_blob,
            recorded_by=actor.user.id,
        )
        session.add(event)
        events.append(event)
        record(
            session,
            actor.ctx,
            "consent.grant",
            resource_type="consent_event",
            resource_id=event.id,
            patient_id=patient.id,
            detail={"scope": scope.value, "version": document.version, "method": body.method.value},
        )
    session.flush()
    if Scope.specialist_sharing in body.scopes:
        # Cases analysed while this consent was missing wait for it: send them now. (Imported here: the
        # cases package imports this module.)
        from backend.cases.routing import route_awaiting_consent

        route_awaiting_consent(session, actor.ctx, patient.id)
    return events


def withdraw(
    session: Session, actor: Actor, patient: Patient, scopes: list[Scope], reason: str | None
) -> list[ConsentEvent]:
    current = status(session, patient.id)
    not_given = [s.value for s in scopes if current[s][0] is None]
    if not_given:
        raise Conflict(f"cannot withdraw scope(s) {', '.join(not_given)}: no active consent to withdraw")
    events = []
    for scope in dict.fromkeys(scopes):
        event = ConsentEvent(
            patient_id=patient.id, scope=scope.value, kind=WITHDRAW, reason=reason, recorded_by=actor.user.id
        )
        session.add(event)
        events.append(event)
        record(
            session,
            actor.ctx,
            "consent.withdraw",
            resource_type="consent_event",
            resource_id=event.id,
            patient_id=patient.id,
            detail={"scope": scope.value},
        )
    session.flush()
    return events
