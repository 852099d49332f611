"""Imports every table module so that `SQLModel.metadata` is complete (Alembic and tests use it)."""

from sqlmodel import SQLModel

from backend.audit import models as audit_models  # noqa: F401
from backend.auth import models as auth_models  # noqa: F401
from backend.cases import models as cases_models  # noqa: F401
from backend.consent import models as consent_models  # noqa: F401
from backend.crypto import models as crypto_models  # noqa: F401
from backend.lesions import models as lesions_models  # noqa: F401
from backend.patients import models as patients_models  # noqa: F401
from backend.sso import models as sso_models  # noqa: F401
from backend.users import models as users_models  # noqa: F401

metadata = SQLModel.metadata
