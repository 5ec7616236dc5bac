"""Module-level extension singletons; each is bound to an app by ``init_app`` in create_app."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Flask, current_app
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy.orm import DeclarativeBase

if TYPE_CHECKING:
    from idp.config import Settings
    from idp.store import Store


class Base(DeclarativeBase):
    pass


# Objects stay loaded after commit: the token endpoint commits and then reads the same
# client, code and user to build its response; expiring them would re-SELECT each one.
# Every request gets a fresh session (removed at app-context teardown), so nothing stale
# outlives the request.
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})
csrf = CSRFProtect()


class StoreExtension:
    """Holds the ephemeral store of the current app (``extensions.store.current``)."""

    def init_app(self, app: Flask) -> None:
        from idp.store import create_store

        settings: Settings = app.extensions["idp.settings"]
        app.extensions["idp.store"] = create_store(settings.redis_url, settings.store_namespace)

    @property
    def current(self) -> Store:
        return current_app.extensions["idp.store"]


store = StoreExtension()


def settings() -> Settings:
    """The validated settings of the current app."""
    return current_app.extensions["idp.settings"]
