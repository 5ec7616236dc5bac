"""Alembic environment: runs on the engine of the Flask app (``idp/database.py``)."""

from alembic import context

from idp import models  # noqa: F401  (registers the tables)
from idp.extensions import db

config = context.config
engine = config.attributes.get("engine")


def run_migrations_online() -> None:
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=db.metadata,
                          render_as_batch=connection.dialect.name == "sqlite",
                          compare_type=True)
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations_online()
