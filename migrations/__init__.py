"""Alembic environment and the `V…` revisions that create every table, on SQLite and MariaDB alike."""

from pathlib import Path

LOCATION = Path(__file__).parent
