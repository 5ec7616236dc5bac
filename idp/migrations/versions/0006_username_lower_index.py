"""unique index on lower(username)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Sign-in filters on lower(username): index that expression, not the column.
    op.create_index("uq_users_username_lower", "users", [sa.text("lower(username)")],
                    unique=True)


def downgrade() -> None:
    op.drop_index("uq_users_username_lower", table_name="users")
