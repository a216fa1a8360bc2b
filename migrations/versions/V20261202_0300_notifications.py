"""notifications: the change events of imports, ID lists, pull points, subscriptions and what they hold

Revision ID: V20261202_0300
Revises: V20261202_0200
Create Date: 2026-12-02 03:00

Every production import writes one event per business key it inserted, changed or closed (with the ids the
register declares) in its own transaction; subscribers' ID lists, pull points and subscriptions match them and
hand them out (importer/load/notifications.py, importer/load/subscriptions.py). All in production.
"""

import sqlalchemy as sa
from alembic import op

revision = "V20261202_0300"
down_revision = "V20261202_0200"
branch_labels = None
depends_on = None

# Frozen here (a revision must not change when the code's types do); the same as importer/db.py's today.
MYSQL_TABLE_OPTIONS = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}
PidType = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
DateTimeSeconds = sa.DateTime()


def upgrade() -> None:
    op.create_table(
        "stamdata_notification_event",
        sa.Column("Sequence", PidType, primary_key=True, autoincrement=True),
        sa.Column("Topic", sa.String(100), nullable=False),
        sa.Column("Register", sa.String(50), nullable=False),
        sa.Column("Datatype", sa.String(100)),
        sa.Column("Action", sa.String(10), nullable=False),
        sa.Column("ModifiedDate", DateTimeSeconds, nullable=False),
        sa.Column("CreatedDate", DateTimeSeconds, nullable=False),
        sa.Column("Reason", sa.String(100)),
        sqlite_autoincrement=True,
        **MYSQL_TABLE_OPTIONS,
    )
    op.create_index("ix_stamdata_notification_event_topic", "stamdata_notification_event", ["Topic", "Sequence"])
    op.create_index("ix_stamdata_notification_event_created", "stamdata_notification_event", ["CreatedDate"])
    op.create_table(
        "stamdata_notification_event_id",
        sa.Column("Sequence", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("Position", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("Topic", sa.String(100), nullable=False),
        sa.Column("IdValue", sa.String(64), nullable=False),
        sa.Column("IdType", sa.String(200), nullable=False),
        **MYSQL_TABLE_OPTIONS,
    )
    op.create_index("ix_stamdata_notification_event_id_match", "stamdata_notification_event_id",
                    ["IdValue", "Topic", "Sequence"])
    op.create_table(
        "stamdata_notification_idlist",
        sa.Column("Id", PidType, primary_key=True, autoincrement=True),
        sa.Column("Client", sa.String(100), nullable=False),
        sa.Column("Name", sa.String(100), nullable=False),
        sa.Column("Size", sa.Integer, nullable=False),
        sa.Column("CreatedDate", DateTimeSeconds, nullable=False),
        sa.Column("ModifiedDate", DateTimeSeconds, nullable=False),
        **MYSQL_TABLE_OPTIONS,
    )
    op.create_index("ux_stamdata_notification_idlist_name", "stamdata_notification_idlist", ["Client", "Name"],
                    unique=True)
    op.create_table(
        "stamdata_notification_idlist_entry",
        sa.Column("IdList", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("IdValue", sa.String(64), primary_key=True),
        **MYSQL_TABLE_OPTIONS,
    )
    op.create_index("ix_stamdata_notification_idlist_entry_value", "stamdata_notification_idlist_entry",
                    ["IdValue", "IdList"])
    op.create_table(
        "stamdata_notification_pullpoint",
        sa.Column("Id", PidType, primary_key=True, autoincrement=True),
        sa.Column("PublicId", sa.CHAR(32), nullable=False),
        sa.Column("Client", sa.String(100), nullable=False),
        sa.Column("CreatedDate", DateTimeSeconds, nullable=False),
        sa.Column("LastPullDate", DateTimeSeconds),
        **MYSQL_TABLE_OPTIONS,
    )
    op.create_index("ux_stamdata_notification_pullpoint_public", "stamdata_notification_pullpoint", ["PublicId"],
                    unique=True)
    op.create_index("ix_stamdata_notification_pullpoint_client", "stamdata_notification_pullpoint", ["Client"])
    op.create_table(
        "stamdata_notification_subscription",
        sa.Column("Id", PidType, primary_key=True, autoincrement=True),
        sa.Column("PublicId", sa.CHAR(32), nullable=False),
        sa.Column("Client", sa.String(100), nullable=False),
        sa.Column("PullPoint", sa.BigInteger, nullable=False),
        sa.Column("IdList", sa.BigInteger, nullable=False),
        sa.Column("Topic", sa.String(100), nullable=False),
        sa.Column("CreatedDate", DateTimeSeconds, nullable=False),
        sa.Column("Cursor", sa.BigInteger, nullable=False),
        **MYSQL_TABLE_OPTIONS,
    )
    op.create_index("ux_stamdata_notification_subscription_public", "stamdata_notification_subscription",
                    ["PublicId"], unique=True)
    op.create_index("ix_stamdata_notification_subscription_pullpoint", "stamdata_notification_subscription",
                    ["PullPoint"])
    op.create_index("ix_stamdata_notification_subscription_idlist", "stamdata_notification_subscription",
                    ["IdList", "Topic"])
    op.create_index("ix_stamdata_notification_subscription_topic", "stamdata_notification_subscription",
                    ["Topic", "Cursor"])
    op.create_table(
        "stamdata_notification_pending",
        sa.Column("PullPoint", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("Sequence", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("Topic", sa.String(100), nullable=False),
        sa.Column("IdValue", sa.String(64)),
        sa.Column("IdType", sa.String(200)),
        sa.Column("CreatedDate", DateTimeSeconds, nullable=False),
        sa.Column("Pull", sa.BigInteger),
        **MYSQL_TABLE_OPTIONS,
    )
    op.create_index("ix_stamdata_notification_pending_pull", "stamdata_notification_pending",
                    ["PullPoint", "Pull", "Sequence"])
    op.create_index("ix_stamdata_notification_pending_sequence", "stamdata_notification_pending", ["Sequence"])
    op.create_table(
        "stamdata_notification_pull",
        sa.Column("Id", PidType, primary_key=True, autoincrement=True),
        sa.Column("PullPoint", sa.BigInteger, nullable=False),
        sa.Column("MessageId", sa.String(200), nullable=False),
        sa.Column("CreatedDate", DateTimeSeconds, nullable=False),
        sa.Column("More", sa.Boolean, nullable=False),
        sqlite_autoincrement=True,
        **MYSQL_TABLE_OPTIONS,
    )
    op.create_index("ux_stamdata_notification_pull_message", "stamdata_notification_pull", ["PullPoint", "MessageId"],
                    unique=True)
    op.create_index("ix_stamdata_notification_pull_created", "stamdata_notification_pull", ["CreatedDate"])


def downgrade() -> None:
    for table in ("stamdata_notification_pull", "stamdata_notification_pending", "stamdata_notification_subscription",
                  "stamdata_notification_pullpoint", "stamdata_notification_idlist_entry",
                  "stamdata_notification_idlist", "stamdata_notification_event_id", "stamdata_notification_event"):
        op.drop_table(table)
