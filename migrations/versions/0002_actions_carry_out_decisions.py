"""actions carry out decisions

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 21:45:10.065023
"""
import sqlalchemy as sa
from alembic import op

import ledger.models

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('actions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('target_kind', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('reason', sa.Text(), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('next_attempt_at', ledger.models.UTCDateTime(),
                                      nullable=True))
        batch_op.add_column(sa.Column('failure_code', sa.String(length=64), nullable=True))
        batch_op.create_index('ix_action_status', ['status', 'next_attempt_at'], unique=False)

    with op.batch_alter_table('decisions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status_reason', sa.Text(), nullable=True))

    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('unsolicited', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))



def downgrade() -> None:
    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.drop_column('unsolicited')

    with op.batch_alter_table('decisions', schema=None) as batch_op:
        batch_op.drop_column('status_reason')

    with op.batch_alter_table('actions', schema=None) as batch_op:
        batch_op.drop_index('ix_action_status')
        batch_op.drop_column('failure_code')
        batch_op.drop_column('next_attempt_at')
        batch_op.drop_column('reason')
        batch_op.drop_column('target_kind')

