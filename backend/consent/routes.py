"""/api/v1/consent-documents: publishing (admins) and reading (everyone signed in) consent versions."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status
from sqlmodel import select

from backend.audit.service import record
from backend.consent import service
from backend.consent.models import ConsentDocument
from backend.consent.schemas import DocumentCreate, DocumentOut
from backend.core.clock import utcnow
from backend.core.errors import Conflict, NotFound
from backend.core.openapi import error_responses
from backend.deps import AdminActor, CurrentActor, UnitOfWork

router = APIRouter(
    prefix="/api/v1/consent-documents",
    tags=["consent"],
    responses=error_responses(NotFound, Conflict),
)


@router.post("", response_model=DocumentOut, status_code=status.HTTP_201_CREATED)
def publish(body: DocumentCreate, actor: AdminActor, session: UnitOfWork) -> ConsentDocument:
    """Publish a consent version. Published versions are immutable: publish a new version to change one."""
    document = service.publish(session, actor, body)
    return document


@router.get("", response_model=list[DocumentOut])
def list_documents(actor: CurrentActor, session: UnitOfWork) -> list[ConsentDocument]:
    query = select(ConsentDocument).order_by(ConsentDocument.published_at.desc())  # type: ignore[attr-defined]
    return list(session.exec(query))


@router.get("/{document_id}", response_model=DocumentOut)
def get_document(document_id: uuid.UUID, actor: CurrentActor, session: UnitOfWork) -> ConsentDocument:
    return service.get_document(session, document_id)


@router.post("/{document_id}/withdraw", response_model=DocumentOut)
def withdraw_document(document_id: uuid.UUID, actor: AdminActor, session: UnitOfWork) -> ConsentDocument:
    """Stop a version from being used for new consents (existing consents keep their history)."""
    document = service.get_document(session, document_id)
    if document.withdrawn_at is None:
        document.withdrawn_at = utcnow()
        session.add(document)
        record(
            session,
            actor.ctx,
            "consent_document.withdraw",
            resource_type="consent_document",
            resource_id=document.id,
        )
    return document
