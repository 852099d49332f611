"""First-start helpers: demo accounts and a demo consent document in development mode.

A fresh development install must be usable end to end: without a published consent document the demo
clinician's first case fails with ``consent_required``. So the same first start that creates the demo
accounts also publishes a consent document whose title and text say plainly that it is a template to be
replaced. Production publishes nothing by itself: an administrator publishes the real, reviewed text.
"""

from __future__ import annotations

import secrets

from backend.auth.service import AuthService
from backend.config import Settings
from backend.consent import service as consent
from backend.consent.models import Scope
from backend.consent.schemas import DocumentCreate
from backend.core.actor import SYSTEM, Actor
from backend.db import Database
from backend.users.models import Role
from backend.users.service import count_users, create_clinic, create_user

DEMO_DOMAIN = "demo.dermalink.local"
DEMO_CONSENT_VERSION = "demo-template-1"
DEMO_CONSENT = DocumentCreate(
    version=DEMO_CONSENT_VERSION,
    language="en",
    title="DEMO TEMPLATE - replace before real use: consent to teledermatology",
    text=(
        "THIS IS A DEMONSTRATION TEMPLATE published automatically in development mode. It has not been "
        "reviewed by anyone and must be replaced by your organisation's approved consent text (an "
        "administrator publishes a new version) before DermaLink is used with real patients.\n\n"
        "I agree that photographs of my skin lesion may be analysed by DermaLink's decision-support "
        "software (AI analysis), shared with a remote dermatologist for their opinion (specialist "
        "sharing), and, if I agree to it separately, used without my identity for research and to "
        "improve the software (research). The software supports, and never replaces, my clinician's "
        "diagnosis. I may withdraw any part of this consent at any time."
    ),
    scopes=list(Scope),
)


def create_demo_users(db: Database, settings: Settings, auth: AuthService) -> list[dict[str, str]] | None:
    """In development, on an empty database, create one account per role; return their credentials once."""
    if settings.environment != "development" or not settings.create_demo_users:
        return None
    with db.session() as session:
        if count_users(session):
            return None
        created = []
        admin = None
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
                admin = user
                enrolment = auth.begin_totp_enrolment(session, SYSTEM, user, None)
                user.totp_enabled = True
                entry["totp_secret"] = enrolment["secret"]
                entry["otpauth_uri"] = enrolment["otpauth_uri"]
            created.append(entry)
        if admin is not None:  # published by the demo admin, so the audit trail names who published it
            actor = Actor(admin, SYSTEM.as_actor(admin.id, Role.admin.value))
            consent.publish(session, actor, DEMO_CONSENT)
        session.commit()
        return created


def print_demo_users(created: list[dict[str, str]]) -> None:
    lines = ["", "DermaLink development mode: demo accounts (shown once, not stored in clear anywhere):"]
    for entry in created:
        lines.append(f"  {entry['role']:<14} {entry['email']:<34} password: {entry['password']}")
        if "totp_secret" in entry:
            lines.append(f"  {'':<14} TOTP secret (add to an authenticator app): {entry['totp_secret']}")
    lines.append(
        f"  consent document '{DEMO_CONSENT_VERSION}' published: a DEMO TEMPLATE, replace it before real use"
    )
    lines.append("")
    print("\n".join(lines), flush=True)
