"""satisfaction callbacks

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import router.orm

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "callbacks",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "work_order_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column(
            "appeal_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("result", sa.String(length=24), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("due_at", router.orm.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_attempt_at", router.orm.UTCDateTime(timezone=True), nullable=True),
        sa.Column("completed_at", router.orm.UTCDateTime(timezone=True), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", router.orm.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("provider IN ('agent', 'gateway')", name=op.f("ck_callbacks_provider")),
        sa.CheckConstraint(
            "result IS NULL OR result IN ('satisfied', 'basically_satisfied', 'unsatisfied', "
            "'unreachable')",
            name=op.f("ck_callbacks_result"),
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'calling', 'completed', 'cancelled')",
            name=op.f("ck_callbacks_status"),
        ),
        sa.ForeignKeyConstraint(
            ["appeal_id"], ["appeals.id"], name=op.f("fk_callbacks_appeal_id_appeals")
        ),
        sa.ForeignKeyConstraint(
            ["work_order_id"],
            ["work_orders.id"],
            name=op.f("fk_callbacks_work_order_id_work_orders"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callbacks")),
        sa.UniqueConstraint(
            "work_order_id", "round", "appeal_id", name=op.f("uq_callbacks_work_order_id")
        ),
    )
    with op.batch_alter_table("callbacks", schema=None) as batch_op:
        batch_op.create_index("ix_callbacks_status_due_at", ["status", "due_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_callbacks_work_order_id"), ["work_order_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("callbacks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_callbacks_work_order_id"))
        batch_op.drop_index("ix_callbacks_status_due_at")
    op.drop_table("callbacks")
