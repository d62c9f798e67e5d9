"""PayPal transmissions bound to their event; indexes for the drain's look-ups

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 00:20:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('inbox_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('transmission_id', sa.String(length=255), nullable=True))
        batch_op.create_unique_constraint('uq_inbox_transmission',
                                          ['merchant', 'provider', 'transmission_id'])
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.create_index('ix_payment_invoice', ['merchant', 'invoice_ref'], unique=False)
    with op.batch_alter_table('decisions', schema=None) as batch_op:
        batch_op.create_index('ix_decision_account', ['merchant', 'account_ref'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('decisions', schema=None) as batch_op:
        batch_op.drop_index('ix_decision_account')
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_index('ix_payment_invoice')
    with op.batch_alter_table('inbox_events', schema=None) as batch_op:
        batch_op.drop_constraint('uq_inbox_transmission', type_='unique')
        batch_op.drop_column('transmission_id')
