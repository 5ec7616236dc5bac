"""claims released or declined on consents

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


# Plain ALTER TABLE (SQLite >= 3.35 drops columns too): batch mode would reflect the users
# table through the foreign key, and SQLite cannot reflect its expression index.


def upgrade() -> None:
    op.add_column("consents", sa.Column("claims", JSON, nullable=True))
    op.add_column("consents", sa.Column("rejected_claims", JSON, nullable=True))


def downgrade() -> None:
    op.drop_column("consents", "rejected_claims")
    op.drop_column("consents", "claims")
