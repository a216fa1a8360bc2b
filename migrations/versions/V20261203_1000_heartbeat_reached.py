"""beyond one machine: the heartbeat names the newest import its host committed

Revision ID: V20261203_1000
Revises: V20261203_0900
Create Date: 2026-12-03 10:00

A database holding a host's heartbeat row holds every import that row names (the row is written after the import's
commit), so a façade on a replica can tell that it has reached a client's token even where the token's view has no
row of that moment; the beat's own time, the host's clock, cannot tell that (an import's transaction time is taken
before it commits, and beats go on meanwhile).
"""

import sqlalchemy as sa
from alembic import op

revision = "V20261203_1000"
down_revision = "V20261203_0900"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("stamdata_heartbeat", sa.Column("Reached", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("stamdata_heartbeat") as table:  # SQLite drops a column by copying the table
        table.drop_column("Reached")
