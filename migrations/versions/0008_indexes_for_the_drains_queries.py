"""Indexes for the drain's remaining look-ups by a non-key column

A cancellation's latest payment (payments by subscription), an account's invoices (invoices by
customer), a refund's action (actions by provider_ref) and a decision's actions (actions by
decision): each was a full scan of its table, once per event that asked.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22 02:00:00
"""
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.create_index('ix_payment_subscription', ['merchant', 'subscription_ref'],
                              unique=False)
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.create_index('ix_invoice_customer', ['merchant', 'customer_ref'], unique=False)
    with op.batch_alter_table('actions', schema=None) as batch_op:
        batch_op.create_index('ix_action_decision', ['decision_id'], unique=False)
        batch_op.create_index('ix_action_provider_ref', ['provider_ref'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('actions', schema=None) as batch_op:
        batch_op.drop_index('ix_action_provider_ref')
        batch_op.drop_index('ix_action_decision')
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.drop_index('ix_invoice_customer')
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_index('ix_payment_subscription')
