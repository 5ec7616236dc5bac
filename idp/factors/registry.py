"""The factor registry: built-in factors plus third-party ones from the ``idp.factors``
entry point group (each entry point names a Factor class or a zero-argument factory)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from importlib.metadata import entry_points

from idp.factors.base import Factor

logger = logging.getLogger("idp.factors")
ENTRY_POINT_GROUP = "idp.factors"


class FactorRegistry:
    def __init__(self, factors: list[Factor]) -> None:
        self._factors: dict[str, Factor] = {}
        for factor in factors:
            self.add(factor)

    def add(self, factor: Factor) -> None:
        if not isinstance(factor, Factor):
            raise TypeError(f"{factor!r} does not implement the Factor protocol")
        if factor.method in self._factors:
            raise ValueError(f"two factors claim the method {factor.method!r}")
        self._factors[factor.method] = factor

    def get(self, method: str) -> Factor | None:
        return self._factors.get(method)

    def __iter__(self) -> Iterator[Factor]:
        """Most secure first (picker order)."""
        return iter(sorted(self._factors.values(), key=lambda f: -f.strength))

    def __contains__(self, method: str) -> bool:
        return method in self._factors

    @property
    def methods(self) -> list[str]:
        return [factor.method for factor in self]


def builtin_factors() -> list[Factor]:
    from idp.factors.email import EmailFactor
    from idp.factors.passkey import PasskeyFactor
    from idp.factors.recovery_codes import RecoveryCodeFactor
    from idp.factors.sms import SmsFactor
    from idp.factors.totp import TotpFactor

    return [PasskeyFactor(), TotpFactor(), SmsFactor(), EmailFactor(), RecoveryCodeFactor()]


def load_registry(allowed: list[str] | None = None) -> FactorRegistry:
    """Built-ins and installed plugins; ``allowed`` (policy.allowed_factors) filters them."""
    factors = builtin_factors()
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = entry.load()
            # A class (even one whose attributes satisfy the Protocol) or a factory is called;
            # an instance is used as it is.
            factors.append(loaded() if isinstance(loaded, type) or not isinstance(loaded, Factor)
                           else loaded)
        except Exception:  # a broken plugin must not take the IdP down
            logger.exception("factor plugin %s failed to load", entry.name)
    if allowed is not None:
        factors = [f for f in factors if f.method in allowed]
    return FactorRegistry(factors)
