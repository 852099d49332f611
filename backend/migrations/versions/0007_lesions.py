"""lesions followed over time, measured change between visits; each existing case becomes its own lesion

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 12:30:00
"""

import uuid
from datetime import timedelta

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lesion",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("clinic_id", sa.Uuid(), nullable=False),
        sa.Column("site", sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
        sa.Column("label", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
        sa.Column("body_view", sqlmodel.sql.sqltypes.AutoString(length=5), nullable=True),
        sa.Column("body_x", sa.Float(), nullable=True),
        sa.Column("body_y", sa.Float(), nullable=True),
        sa.Column("follow_up_due_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["clinic_id"], ["clinic.id"]),
        sa.ForeignKeyConstraint(["created_by"], ["user_account.id"]),
        sa.ForeignKeyConstraint(["patient_id"], ["patient.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("lesion", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_lesion_clinic_id"), ["clinic_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_lesion_follow_up_due_at"), ["follow_up_due_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_lesion_patient_id"), ["patient_id"], unique=False)

    op.create_table(
        "lesion_change",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("lesion_id", sa.Uuid(), nullable=False),
        sa.Column("baseline_case_id", sa.Uuid(), nullable=False),
        sa.Column("followup_case_id", sa.Uuid(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("measurements", sa.JSON(), nullable=False),
        sa.Column("probability_change", sa.JSON(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["baseline_case_id"], ["clinical_case.id"]),
        sa.ForeignKeyConstraint(["followup_case_id"], ["clinical_case.id"]),
        sa.ForeignKeyConstraint(["lesion_id"], ["lesion.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("followup_case_id"),
    )
    with op.batch_alter_table("lesion_change", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_lesion_change_lesion_id"), ["lesion_id"], unique=False)

    with op.batch_alter_table("clinical_case", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lesion_id", sa.Uuid(), nullable=True))
        batch_op.create_index(batch_op.f("ix_clinical_case_lesion_id"), ["lesion_id"], unique=False)
        batch_op.create_foreign_key("fk_clinical_case_lesion_id_lesion", "lesion", ["lesion_id"], ["id"])

    _one_lesion_per_existing_case()


def _one_lesion_per_existing_case() -> None:
    """Every case so far becomes its own lesion (its site; due when its answer asked for a follow-up)."""
    bind = op.get_bind()
    cases = sa.table(
        "clinical_case",
        sa.column("id", sa.Uuid()),
        sa.column("patient_id", sa.Uuid()),
        sa.column("clinic_id", sa.Uuid()),
        sa.column("site", sa.String()),
        sa.column("created_by", sa.Uuid()),
        sa.column("created_at", sqlmodel.sql.sqltypes.UTCDateTime()),
        sa.column("lesion_id", sa.Uuid()),
    )
    answers = sa.table(
        "case_answer",
        sa.column("case_id", sa.Uuid()),
        sa.column("follow_up_weeks", sa.Integer()),
        sa.column("created_at", sqlmodel.sql.sqltypes.UTCDateTime()),
    )
    lesions = sa.table(
        "lesion",
        sa.column("id", sa.Uuid()),
        sa.column("patient_id", sa.Uuid()),
        sa.column("clinic_id", sa.Uuid()),
        sa.column("site", sa.String()),
        sa.column("label", sa.String()),
        sa.column("follow_up_due_at", sqlmodel.sql.sqltypes.UTCDateTime()),
        sa.column("created_by", sa.Uuid()),
        sa.column("created_at", sqlmodel.sql.sqltypes.UTCDateTime()),
    )
    rows = bind.execute(
        sa.select(
            cases.c.id,
            cases.c.patient_id,
            cases.c.clinic_id,
            cases.c.site,
            cases.c.created_by,
            cases.c.created_at,
            answers.c.follow_up_weeks,
            answers.c.created_at.label("answered_at"),
        ).select_from(cases.outerjoin(answers, answers.c.case_id == cases.c.id))
    ).all()
    for row in rows:
        lesion_id = uuid.uuid4()
        due = row.answered_at + timedelta(weeks=row.follow_up_weeks) if row.follow_up_weeks else None
        bind.execute(
            lesions.insert().values(
                id=lesion_id,
                patient_id=row.patient_id,
                clinic_id=row.clinic_id,
                site=row.site or "unknown",
                label="",
                follow_up_due_at=due,
                created_by=row.created_by,
                created_at=row.created_at,
            )
        )
        bind.execute(cases.update().where(cases.c.id == row.id).values(lesion_id=lesion_id))


def downgrade() -> None:
    with op.batch_alter_table("clinical_case", schema=None) as batch_op:
        batch_op.drop_constraint("fk_clinical_case_lesion_id_lesion", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_clinical_case_lesion_id"))
        batch_op.drop_column("lesion_id")
    with op.batch_alter_table("lesion_change", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lesion_change_lesion_id"))
    op.drop_table("lesion_change")
    with op.batch_alter_table("lesion", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lesion_patient_id"))
        batch_op.drop_index(batch_op.f("ix_lesion_follow_up_due_at"))
        batch_op.drop_index(batch_op.f("ix_lesion_clinic_id"))
    op.drop_table("lesion")
