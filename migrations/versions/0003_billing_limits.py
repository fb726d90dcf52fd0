"""Billing outbox: debounce start, the hourly update window, proration invoicing state.

Revision ID: 0003
Revises: 0002

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | Sequence[str] | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('billing_outbox') as batch_op:
        batch_op.add_column(sa.Column('first_pending_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('window_started_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column('window_updates', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(
            sa.Column('invoice_needed', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('invoice_day', sa.String(length=10), nullable=True))
        batch_op.add_column(
            sa.Column('invoices_today', sa.Integer(), nullable=False, server_default='0'))
    with op.batch_alter_table('billing_outbox') as batch_op:
        # The defaults only filled existing rows; the models supply values from now on.
        batch_op.alter_column('window_updates', server_default=None)
        batch_op.alter_column('invoice_needed', server_default=None)
        batch_op.alter_column('invoices_today', server_default=None)


def downgrade() -> None:
    with op.batch_alter_table('billing_outbox') as batch_op:
        for column in ('invoices_today', 'invoice_day', 'invoice_needed', 'window_updates',
                       'window_started_at', 'first_pending_at'):
            batch_op.drop_column(column)
