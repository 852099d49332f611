"""First-start helpers: demo accounts in development mode."""

from __future__ import annotations

import secrets

from backend.auth.service import AuthService
from backend.config import Settings
from backend.core.actor import SYSTEM
from backend.db import Database
from backend.users.models import Role
from backend.users.service import count_users, create_clinic, create_user

DEMO_DOMAIN = "demo.dermalink.local"


def create_demo_users(db: Database, settings: Settings, auth: AuthService) -> list[dict[str, str]] | None:
    """In development, on an empty database, create one account per role; return their credentials once."""
    if settings.environment != "development" or not settings.create_demo_users:
        return None
    with db.session() as session:
        if count_users(session):
            return None
        created = []
        clinic = create_clinic(session, SYSTEM, "Demo Clinic")
        for role in Role:
            password = secrets.token_urlsafe(12)
            user = create_user(
                session,
                SYSTEM,
                email=f"{role.value}@{DEMO_DOMAIN}",
                full_name=f"Demo {role.value}",
                role=role,
                password=password,
                password_min_length=settings.password_min_length,
                clinic_id=clinic.id if role is Role.clinician else None,
            )
            entry = {"role": role.value, "email": user.email, "password": password}
            if role is Role.admin:  # admins need TOTP: enrol the demo admin right away
                enrolment = auth.begin_totp_enrolment(session, SYSTEM, user, None)
                user.totp_enabled = True
                entry["totp_secret"] = enrolment["secret"]
                entry["otpauth_uri"] = enrolment["otpauth_uri"]
            created.append(entry)
        session.commit()
        return created


def print_demo_users(created: list[dict[str, str]]) -> None:
    lines = ["", "DermaLink development mode: demo accounts (shown once, not stored in clear anywhere):"]
    for entry in created:
        lines.append(f"  {entry['role']:<14} {entry['email']:<34} password: {entry['password']}")
        if "totp_secret" in entry:
            lines.append(f"  {'':<14} TOTP secret (add to an authenticator app): {entry['totp_secret']}")
    lines.append("")
    print("\n".join(lines), flush=True)
