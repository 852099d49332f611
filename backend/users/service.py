"""Creating and managing staff accounts."""

from __future__ import annotations

import uuid

from sqlmodel import Session, func, select

from backend.audit.service import record
from backend.core.actor import AuditContext
from backend.core.clock import utcnow
from backend.core.errors import Conflict, NotFound
from backend.core.security import check_password_policy, hash_password
from backend.users.models import Clinic, Role, User


def normalise_email(email: str) -> str:
    return email.strip().lower()


def get_by_email(session: Session, email: str) -> User | None:
    return session.exec(select(User).where(User.email == normalise_email(email))).first()


def get_user(session: Session, user_id: uuid.UUID) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found")
    return user


def count_users(session: Session) -> int:
    return session.exec(select(func.count()).select_from(User)).one()


def create_user(
    session: Session,
    ctx: AuditContext,
    *,
    email: str,
    full_name: str,
    role: Role,
    password: str,
    password_min_length: int,
    clinic_id: uuid.UUID | None = None,
) -> User:
    email = normalise_email(email)
    check_password_policy(password, email=email, min_length=password_min_length, user_inputs=[full_name])
    if get_by_email(session, email) is not None:
        raise Conflict(f"a user with e-mail {email} already exists")
    if clinic_id is not None:
        get_clinic(session, clinic_id)
    user = User(
        email=email,
        full_name=full_name.strip(),
        role=role.value,
        password_hash=hash_password(password),
        clinic_id=clinic_id,
    )
    session.add(user)
    session.flush()
    record(
        session, ctx, "user.create", resource_type="user", resource_id=user.id, detail={"role": role.value}
    )
    return user


def update_user(
    session: Session,
    ctx: AuditContext,
    user: User,
    *,
    full_name: str | None = None,
    role: Role | None = None,
    is_active: bool | None = None,
    clinic_id: uuid.UUID | None = None,
) -> User:
    changes = {}
    if clinic_id is not None and clinic_id != user.clinic_id:
        get_clinic(session, clinic_id)
        user.clinic_id, changes["clinic_id"] = clinic_id, str(clinic_id)
    if full_name is not None and full_name != user.full_name:
        user.full_name, changes["full_name"] = full_name.strip(), "changed"
    if role is not None and role.value != user.role:
        changes["role"] = f"{user.role}->{role.value}"
        user.role = role.value
    if is_active is not None and is_active != user.is_active:
        user.is_active, changes["is_active"] = is_active, is_active
    if changes:
        user.updated_at = utcnow()
        session.add(user)
        record(session, ctx, "user.update", resource_type="user", resource_id=user.id, detail=changes)
    return user


def unlock_user(session: Session, ctx: AuditContext, user: User) -> User:
    user.failed_logins, user.locked_until, user.last_failed_login_at = 0, None, None
    session.add(user)
    record(session, ctx, "user.unlock", resource_type="user", resource_id=user.id)
    return user


def get_clinic(session: Session, clinic_id: uuid.UUID) -> Clinic:
    clinic = session.get(Clinic, clinic_id)
    if clinic is None:
        raise NotFound(f"clinic {clinic_id} not found")
    return clinic


def create_clinic(session: Session, ctx: AuditContext, name: str) -> Clinic:
    if session.exec(select(Clinic).where(Clinic.name == name)).first() is not None:
        raise Conflict(f"a clinic named {name!r} already exists")
    clinic = Clinic(name=name)
    session.add(clinic)
    session.flush()
    record(session, ctx, "clinic.create", resource_type="clinic", resource_id=clinic.id)
    return clinic
