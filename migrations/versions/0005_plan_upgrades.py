"""Trial to paid: the agency's default card, and pending plan upgrades.

Revision ID: 0005
Revises: 0004

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | Sequence[str] | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('agencies') as batch_op:
        batch_op.add_column(sa.Column('payment_method', sa.JSON(), nullable=True))
    op.create_table(
        'plan_upgrades',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True,
                  nullable=False),
        sa.Column('agency_id', sa.String(length=64), nullable=False),
        sa.Column('base', sa.Integer(), nullable=False),
        sa.Column('voice', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=24), nullable=False),
        sa.Column('request_key', sa.String(length=64), nullable=False),
        sa.Column('checkout_session_id', sa.String(length=255), nullable=True),
        sa.Column('checkout_url', sa.Text(), nullable=True),
        sa.Column('checkout_expires_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('invoice_id', sa.String(length=255), nullable=True),
        sa.Column('amount_paid', sa.Integer(), nullable=True),
        sa.Column('currency', sa.String(length=8), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['agency_id'], ['agencies.id'], name=op.f('fk_plan_upgrades_agency_id_agencies'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_plan_upgrades')),
        sa.UniqueConstraint('checkout_session_id', name=op.f('uq_plan_upgrades_checkout_session_id')),
    )
    op.create_index('ix_plan_upgrades_agency_id_status', 'plan_upgrades', ['agency_id', 'status'],
                    unique=False)


def downgrade() -> None:
    op.drop_index('ix_plan_upgrades_agency_id_status', table_name='plan_upgrades')
    op.drop_table('plan_upgrades')
    with op.batch_alter_table('agencies') as batch_op:
        batch_op.drop_column('payment_method')
