"""What ``load_registry`` promises third-party factors (examples/hotp_factor/README.md): an
``idp.factors`` entry point may name a Factor instance, a Factor class or a zero-argument
factory; a plugin that fails to load is logged and skipped; ``allowed`` filters plugins like
built-ins. Entry points are stubbed here; test_hotp_plugin.py uses a really installed one.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from idp.factors import registry
from idp.factors.base import Factor


class ClassAttributeFactor:
    """Declares the Protocol's data members on the class, as the built-in factors do."""

    method = "stub"
    label = "Stub"
    amr = ("otp",)
    category = "have"
    strength = 1
    templates = None

    def available_for(self, user: Any) -> bool:
        return True

    def begin_enrollment(self, env: Any, user: Any, credential: Any, params: Any) -> Any:
        raise NotImplementedError

    def finish_enrollment(self, env: Any, user: Any, credential: Any, state: Any,
                          response: Any) -> Any:
        raise NotImplementedError

    def begin_challenge(self, env: Any, user: Any, credential: Any) -> Any:
        raise NotImplementedError

    def verify(self, env: Any, user: Any, credential: Any, state: Any, response: Any) -> Any:
        raise NotImplementedError

    def expected_event(self, credential: Any, now: int) -> Any:
        raise NotImplementedError


class StubEntryPoint:
    def __init__(self, name: str, target: Any) -> None:
        self.name = name
        self.target = target

    def load(self) -> Any:
        if isinstance(self.target, Exception):
            raise self.target
        return self.target


@pytest.fixture
def plugins(monkeypatch):
    """Replace the installed entry points with the given stubs."""

    def install(*targets: Any) -> None:
        stubs = [StubEntryPoint(f"stub{i}", target) for i, target in enumerate(targets)]
        monkeypatch.setattr(registry, "entry_points",
                            lambda group: stubs if group == registry.ENTRY_POINT_GROUP else [])

    return install


def test_an_instance_is_registered_as_is(plugins):
    instance = ClassAttributeFactor()
    plugins(instance)
    assert registry.load_registry().get("stub") is instance


def test_a_zero_argument_factory_is_called(plugins):
    plugins(lambda: ClassAttributeFactor())
    loaded = registry.load_registry().get("stub")
    assert isinstance(loaded, ClassAttributeFactor)
    assert loaded.available_for(None)


def test_a_class_with_class_attributes_is_instantiated(plugins):
    assert isinstance(ClassAttributeFactor, Factor)  # why the registry skips instantiation
    plugins(ClassAttributeFactor)
    loaded = registry.load_registry().get("stub")
    assert isinstance(loaded, ClassAttributeFactor)


def test_allowed_filters_plugins_like_builtins(plugins):
    plugins(ClassAttributeFactor())
    assert "stub" not in registry.load_registry(["totp"])
    assert registry.load_registry(["totp", "stub"]).methods == ["totp", "stub"]


def test_a_broken_plugin_is_logged_and_skipped(plugins, caplog):
    plugins(ImportError("no module named stepup_broken"), ClassAttributeFactor())
    with caplog.at_level(logging.ERROR, logger="idp.factors"):
        loaded = registry.load_registry()
    assert "stub" in loaded and "totp" in loaded
    assert "factor plugin stub0 failed to load" in caplog.text
