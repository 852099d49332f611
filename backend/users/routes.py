"""/api/v1/users: the caller's own account, and account administration (admins)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status
from sqlmodel import select

from backend.core.errors import Conflict, NotFound
from backend.core.openapi import error_responses
from backend.core.schemas import Page, cursor_text, decode_cursor, page_of
from backend.deps import AdminActor, AuthServiceDep, CurrentActor, SettingsDep, UnitOfWork
from backend.users import service
from backend.users.models import Clinic, User
from backend.users.schemas import ClinicCreate, ClinicOut, UserCreate, UserOut, UserUpdate

router = APIRouter(prefix="/api/v1/users", tags=["users"], responses=error_responses(NotFound, Conflict))


@router.get("/me", response_model=UserOut)
def me(actor: CurrentActor) -> User:
    return actor.user


@router.get("", response_model=Page[UserOut])
def list_users(
    actor: AdminActor,
    session: UnitOfWork,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Page[UserOut]:
    query = select(User).order_by(User.email)
    if cursor:
        (after,) = decode_cursor(cursor, cursor_text)
        query = query.where(User.email > after)
    users = list(session.exec(query.limit(limit + 1)))
    return page_of(users, limit, item=UserOut.model_validate, cursor=lambda u: [u.email])


@router.post("", response_model=UserOut, status_code=status.HTTP_201_CREATED)
def create_user(body: UserCreate, actor: AdminActor, session: UnitOfWork, settings: SettingsDep) -> User:
    user = service.create_user(
        session,
        actor.ctx,
        email=body.email,
        full_name=body.full_name,
        role=body.role,
        password=body.password,
        password_min_length=settings.password_min_length,
        clinic_id=body.clinic_id,
    )
    return user


@router.get("/{user_id}", response_model=UserOut)
def get_user(user_id: uuid.UUID, actor: AdminActor, session: UnitOfWork) -> User:
    return service.get_user(session, user_id)


@router.patch("/{user_id}", response_model=UserOut)
def update_user(user_id: uuid.UUID, body: UserUpdate, actor: AdminActor, session: UnitOfWork) -> User:
    user = service.update_user(
        session,
        actor.ctx,
        service.get_user(session, user_id),
        full_name=body.full_name,
        role=body.role,
        is_active=body.is_active,
        clinic_id=body.clinic_id,
    )
    return user


@router.post("/{user_id}/unlock", response_model=UserOut)
def unlock_user(user_id: uuid.UUID, actor: AdminActor, session: UnitOfWork, auth: AuthServiceDep) -> User:
    """Lift an account-wide lock (the per-address windows of a guesser stay)."""
    user = service.unlock_user(session, actor.ctx, service.get_user(session, user_id))
    session.commit()  # early, like case submission: Redis is cleared only once the unlock is durable
    auth.throttle.clear_account(user.email)
    return user


clinics_router = APIRouter(
    prefix="/api/v1/clinics", tags=["users"], responses=error_responses(NotFound, Conflict)
)


@clinics_router.post("", response_model=ClinicOut, status_code=status.HTTP_201_CREATED)
def create_clinic(body: ClinicCreate, actor: AdminActor, session: UnitOfWork) -> Clinic:
    clinic = service.create_clinic(session, actor.ctx, body.name)
    return clinic


@clinics_router.get("", response_model=list[ClinicOut])
def list_clinics(actor: AdminActor, session: UnitOfWork) -> list[Clinic]:
    return list(session.exec(select(Clinic).order_by(Clinic.name)))
