"""staged provider records

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21 22:32:48.713320
"""
import sqlalchemy as sa
from alembic import op

import ledger.models

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('staged_provider_records',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('run_id', sa.String(length=64), nullable=False),
    sa.Column('provider', sa.String(length=16), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('provider_id', sa.String(length=255), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('created_at', ledger.models.UTCDateTime(), nullable=False),
    sa.Column('related_id', sa.String(length=255), nullable=True),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('staged_provider_records', schema=None) as batch_op:
        batch_op.create_index('ix_staged_run_ref', ['run_id', 'provider', 'provider_id'],
                              unique=False)



def downgrade() -> None:
    with op.batch_alter_table('staged_provider_records', schema=None) as batch_op:
        batch_op.drop_index('ix_staged_run_ref')

    op.drop_table('staged_provider_records')
