"""intake channels: wechat_nonces, wechat_messages

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import router.orm

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('wechat_nonces',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('nonce', sa.String(length=64), nullable=False),
    sa.Column('seen_at', router.orm.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_wechat_nonces')),
    sa.UniqueConstraint('nonce', name=op.f('uq_wechat_nonces_nonce'))
    )
    with op.batch_alter_table('wechat_nonces', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_wechat_nonces_seen_at'), ['seen_at'], unique=False)

    op.create_table('wechat_messages',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('message_key', sa.String(length=128), nullable=False),
    sa.Column('open_id', sa.String(length=64), nullable=False),
    sa.Column('account', sa.String(length=64), nullable=False),
    sa.Column('appeal_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('created_at', router.orm.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['appeal_id'], ['appeals.id'], name=op.f('fk_wechat_messages_appeal_id_appeals')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_wechat_messages')),
    sa.UniqueConstraint('message_key', name=op.f('uq_wechat_messages_message_key'))
    )
    with op.batch_alter_table('wechat_messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_wechat_messages_appeal_id'), ['appeal_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_wechat_messages_open_id'), ['open_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('wechat_messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_wechat_messages_open_id'))
        batch_op.drop_index(batch_op.f('ix_wechat_messages_appeal_id'))

    op.drop_table('wechat_messages')
    with op.batch_alter_table('wechat_nonces', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_wechat_nonces_seen_at'))

    op.drop_table('wechat_nonces')
