"""Account credit that gets used

A use of credit (a negative entry) names the grant it draws on and the invoice or payment it is
applied to, once (unique); a grant says who holds it: the ledger, or the Stripe customer balance.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29 21:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('account_credits', schema=None) as batch_op:
        batch_op.add_column(sa.Column('held_by', sa.String(length=16), nullable=False,
                                      server_default='ledger'))
        batch_op.add_column(sa.Column('applies_to', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('applied_to', sa.String(length=255), nullable=True))
        batch_op.create_foreign_key('fk_credit_applies_to', 'account_credits', ['applies_to'],
                                    ['id'])
        batch_op.create_unique_constraint('uq_credit_application', ['applies_to', 'applied_to'])
    op.execute("UPDATE account_credits SET held_by = 'stripe_balance' "
               "WHERE reason LIKE '%held on the Stripe customer balance as %'")


def downgrade() -> None:
    with op.batch_alter_table('account_credits', schema=None) as batch_op:
        batch_op.drop_constraint('uq_credit_application', type_='unique')
        batch_op.drop_constraint('fk_credit_applies_to', type_='foreignkey')
        batch_op.drop_column('applied_to')
        batch_op.drop_column('applies_to')
        batch_op.drop_column('held_by')
