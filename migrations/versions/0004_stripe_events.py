"""Stripe webhook events: stored once under their id, with the processing outcome.

Revision ID: 0004
Revises: 0003

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | Sequence[str] | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'stripe_events',
        sa.Column('id', sa.String(length=255), nullable=False),
        sa.Column('type', sa.String(length=100), nullable=False),
        sa.Column('created', sa.DateTime(timezone=True), nullable=False),
        sa.Column('object_id', sa.String(length=255), nullable=True),
        sa.Column('agency_id', sa.String(length=64), nullable=True),
        sa.Column('payload', sa.JSON(), nullable=False),
        sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('processed_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_stripe_events')),
    )
    op.create_index(op.f('ix_stripe_events_type'), 'stripe_events', ['type'], unique=False)
    op.create_index(op.f('ix_stripe_events_created'), 'stripe_events', ['created'], unique=False)
    op.create_index(
        'ix_stripe_events_status_received_at', 'stripe_events', ['status', 'received_at'],
        unique=False)
    op.create_index(
        'ix_stripe_events_agency_id_created', 'stripe_events', ['agency_id', 'created'],
        unique=False)


def downgrade() -> None:
    op.drop_index('ix_stripe_events_agency_id_created', table_name='stripe_events')
    op.drop_index('ix_stripe_events_status_received_at', table_name='stripe_events')
    op.drop_index(op.f('ix_stripe_events_created'), table_name='stripe_events')
    op.drop_index(op.f('ix_stripe_events_type'), table_name='stripe_events')
    op.drop_table('stripe_events')
