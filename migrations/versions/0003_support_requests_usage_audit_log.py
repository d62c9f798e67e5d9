"""support requests, usage, audit log

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 22:00:32.012596
"""
import sqlalchemy as sa
from alembic import op

import ledger.models

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', ledger.models.UTCDateTime(), nullable=False),
    sa.Column('merchant', sa.String(length=64), nullable=False),
    sa.Column('actor', sa.String(length=255), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('subject', sa.String(length=255), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index('ix_audit_subject', ['merchant', 'subject'], unique=False)

    op.create_table('usage_reports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('merchant', sa.String(length=64), nullable=False),
    sa.Column('account_ref', sa.String(length=255), nullable=False),
    sa.Column('bandwidth_bytes', sa.BigInteger(), nullable=False),
    sa.Column('sessions', sa.Integer(), nullable=False),
    sa.Column('last_used_at', ledger.models.UTCDateTime(), nullable=True),
    sa.Column('reported_at', ledger.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('usage_reports', schema=None) as batch_op:
        batch_op.create_index('ix_usage_account', ['merchant', 'account_ref', 'reported_at'],
                              unique=False)

    op.create_table('support_requests',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('merchant', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('account_ref', sa.String(length=255), nullable=False),
    sa.Column('payment_ref', sa.String(length=255), nullable=True),
    sa.Column('body', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('decision_id', sa.String(length=64), nullable=True),
    sa.Column('filed_by', sa.String(length=255), nullable=False),
    sa.Column('created_at', ledger.models.UTCDateTime(), nullable=False),
    sa.Column('decided_at', ledger.models.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['decision_id'], ['decisions.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('support_requests', schema=None) as batch_op:
        batch_op.create_index('ix_request_merchant', ['merchant', 'created_at'], unique=False)

    with op.batch_alter_table('decisions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reviewed_by', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('reviewed_at', ledger.models.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('review_note', sa.Text(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('decisions', schema=None) as batch_op:
        batch_op.drop_column('review_note')
        batch_op.drop_column('reviewed_at')
        batch_op.drop_column('reviewed_by')

    with op.batch_alter_table('support_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_request_merchant')

    op.drop_table('support_requests')
    with op.batch_alter_table('usage_reports', schema=None) as batch_op:
        batch_op.drop_index('ix_usage_account')

    op.drop_table('usage_reports')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_subject')

    op.drop_table('audit_log')
