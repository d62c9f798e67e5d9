"""Refund bounds, dispute states and idempotent admin requests

A dispute's state (open, won, lost) beside the provider's own word for it; indexes for what a
payment's refundable remainder reads (its refunds, refund actions and disputes) and for a
payment's open refund requests; the answers given to admin requests sent with an
``Idempotency-Key``.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 19:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('disputes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('state', sa.String(length=8), nullable=False,
                                      server_default='open'))
        batch_op.create_index('ix_dispute_payment', ['merchant', 'payment_ref'], unique=False)
    op.execute("UPDATE disputes SET state = 'won' WHERE status IN ('won', 'warning_closed')")
    op.execute("UPDATE disputes SET state = 'lost' WHERE status = 'lost'")
    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.create_index('ix_refund_payment', ['merchant', 'payment_ref'], unique=False)
    with op.batch_alter_table('actions', schema=None) as batch_op:
        batch_op.create_index('ix_action_payment', ['merchant', 'payment_ref'], unique=False)
    with op.batch_alter_table('support_requests', schema=None) as batch_op:
        batch_op.create_index('ix_request_payment', ['merchant', 'payment_ref'], unique=False)
    op.create_table(
        'idempotency_keys',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('merchant', sa.String(length=64), nullable=False),
        sa.Column('key', sa.String(length=255), nullable=False),
        sa.Column('fingerprint', sa.String(length=64), nullable=False),
        sa.Column('status_code', sa.Integer(), nullable=False),
        sa.Column('response', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('merchant', 'key', name='uq_idempotency_key'),
    )
    with op.batch_alter_table('idempotency_keys', schema=None) as batch_op:
        batch_op.create_index('ix_idempotency_created', ['created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('idempotency_keys', schema=None) as batch_op:
        batch_op.drop_index('ix_idempotency_created')
    op.drop_table('idempotency_keys')
    with op.batch_alter_table('support_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_request_payment')
    with op.batch_alter_table('actions', schema=None) as batch_op:
        batch_op.drop_index('ix_action_payment')
    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.drop_index('ix_refund_payment')
    with op.batch_alter_table('disputes', schema=None) as batch_op:
        batch_op.drop_index('ix_dispute_payment')
        batch_op.drop_column('state')
