"""overdue assessments, account standing, notices outbox

New tables only: nothing is added to an existing table. Boolean defaults are written as
sa.false() (autogenerate renders text('0'), which PostgreSQL refuses for a boolean).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 22:03:36.775405
"""
import sqlalchemy as sa
from alembic import op

import ledger.models

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('accounts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('merchant', sa.String(length=64), nullable=False),
    sa.Column('account_ref', sa.String(length=255), nullable=False),
    sa.Column('support_withheld', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('suspended_for_breach', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('violations', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('updated_at', ledger.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('merchant', 'account_ref', name='uq_account_ref')
    )
    op.create_table('outbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('merchant', sa.String(length=64), nullable=False),
    sa.Column('account_ref', sa.String(length=255), nullable=False),
    sa.Column('kind', sa.String(length=48), nullable=False),
    sa.Column('subject_ref', sa.String(length=255), nullable=False),
    sa.Column('send_at', ledger.models.UTCDateTime(), nullable=False),
    sa.Column('sent_at', ledger.models.UTCDateTime(), nullable=True),
    sa.Column('channel', sa.String(length=16), nullable=True),
    sa.Column('body', sa.JSON(), nullable=False),
    sa.Column('attempts', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('withdrawn_at', ledger.models.UTCDateTime(), nullable=True),
    sa.Column('created_at', ledger.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('merchant', 'kind', 'subject_ref', name='uq_outbox_subject')
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_due', ['sent_at', 'send_at'], unique=False)

    op.create_table('invoice_assessments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('merchant', sa.String(length=64), nullable=False),
    sa.Column('provider', sa.String(length=16), nullable=False),
    sa.Column('invoice_ref', sa.String(length=255), nullable=False),
    sa.Column('account_ref', sa.String(length=255), nullable=False),
    sa.Column('overdue', sa.Boolean(), nullable=False),
    sa.Column('late_fee', sa.BigInteger(), nullable=True),
    sa.Column('late_fee_currency', sa.String(length=3), nullable=True),
    sa.Column('decision_id', sa.String(length=64), nullable=False),
    sa.Column('assessed_at', ledger.models.UTCDateTime(), nullable=False),
    sa.Column('resolved_at', ledger.models.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['decision_id'], ['decisions.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('merchant', 'provider', 'invoice_ref', name='uq_invoice_assessment')
    )
    with op.batch_alter_table('invoice_assessments', schema=None) as batch_op:
        batch_op.create_index('ix_assessment_account', ['merchant', 'account_ref'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('invoice_assessments', schema=None) as batch_op:
        batch_op.drop_index('ix_assessment_account')

    op.drop_table('invoice_assessments')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_due')

    op.drop_table('outbox')
    op.drop_table('accounts')
