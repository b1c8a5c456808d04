"""knowledge base: knowledge_articles

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 10:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import router.orm

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('knowledge_articles',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('category_code', sa.String(length=16), nullable=True),
    sa.Column('category_path', sa.String(length=400), nullable=False),
    sa.Column('question', sa.Text(), nullable=False),
    sa.Column('answer', sa.Text(), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('source_ref', sa.String(length=128), nullable=True),
    sa.Column('source_date', router.orm.UTCDateTime(timezone=True), nullable=True),
    sa.Column('valid_from', router.orm.UTCDateTime(timezone=True), nullable=True),
    sa.Column('valid_to', router.orm.UTCDateTime(timezone=True), nullable=True),
    sa.Column('owner_department_code', sa.String(length=32), nullable=True),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('updated_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', router.orm.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', router.orm.UTCDateTime(timezone=True), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['category_code'], ['categories.code'], name=op.f('fk_knowledge_articles_category_code_categories')),
    sa.ForeignKeyConstraint(['owner_department_code'], ['departments.code'], name=op.f('fk_knowledge_articles_owner_department_code_departments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_knowledge_articles')),
    sa.UniqueConstraint('source', 'source_ref', name=op.f('uq_knowledge_articles_source'))
    )
    with op.batch_alter_table('knowledge_articles', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_knowledge_articles_owner_department_code'), ['owner_department_code'], unique=False)
        batch_op.create_index('ix_knowledge_articles_state_category', ['state', 'category_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_knowledge_articles_updated_at'), ['updated_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('knowledge_articles', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_knowledge_articles_updated_at'))
        batch_op.drop_index('ix_knowledge_articles_state_category')
        batch_op.drop_index(batch_op.f('ix_knowledge_articles_owner_department_code'))

    op.drop_table('knowledge_articles')
