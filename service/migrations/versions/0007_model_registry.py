"""model registry

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import router.orm

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Defaults on the server only so that rows written before this revision stay valid.
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("source", sa.String(length=32), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column("coverage_curve", sa.JSON(), nullable=False, server_default="[]")
        )
        batch_op.add_column(
            sa.Column(
                "holdout_fingerprint", sa.String(length=80), nullable=False, server_default=""
            )
        )
        batch_op.add_column(sa.Column("provenance", sa.JSON(), nullable=False, server_default="{}"))
        batch_op.add_column(sa.Column("evaluation", sa.JSON(), nullable=False, server_default="{}"))
        batch_op.add_column(sa.Column("previous_version", sa.String(length=64), nullable=True))

    op.create_table(
        "training_jobs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("stage", sa.String(length=32), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("requested_by", sa.String(length=64), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=True),
        sa.Column("promoted", sa.Boolean(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", router.orm.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", router.orm.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", router.orm.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", router.orm.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed')",
            name=op.f("ck_training_jobs_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_jobs")),
    )
    with op.batch_alter_table("training_jobs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_training_jobs_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("training_jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_training_jobs_status"))
    op.drop_table("training_jobs")

    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.drop_column("previous_version")
        batch_op.drop_column("evaluation")
        batch_op.drop_column("provenance")
        batch_op.drop_column("holdout_fingerprint")
        batch_op.drop_column("coverage_curve")
        batch_op.drop_column("source")
