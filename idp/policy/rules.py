"""Adaptive step-up rules and enforcement, evaluated over request signals.

Each rule is ``{when: {condition: value, ...}, require: level}``; every condition of a rule
must hold for it to match, and every matching rule raises the required level. Unknown
conditions or levels are configuration errors at start, never ignored.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from idp.assurance import Ladder


class PolicyError(ValueError):
    """The policy configuration is invalid; the message names the rule and key."""


@dataclass(frozen=True)
class Signals:
    """What is known about this sign-in (DESIGN §5; ``idp policy explain`` builds these)."""

    client_id: str | None = None
    ip: str | None = None
    new_device: bool = False
    country: str | None = None
    previous_country: str | None = None
    recent_failures: int = 0
    user_created_at: int | None = None
    user_has_factors: bool = False
    #: Sign-ins without a second factor under required enforcement, this one included.
    logins_without_mfa: int = 0


def _country_changed(expected: Any, s: Signals) -> bool:
    changed = bool(s.country and s.previous_country and s.country != s.previous_country)
    return changed == bool(expected)


def _ip_in(networks: Any, s: Signals) -> bool:
    if not s.ip:
        return False
    try:
        address = ipaddress.ip_address(s.ip)
    except ValueError:
        return False
    return any(address in network for network in networks)


#: condition name → (value parser, predicate)
CONDITIONS: dict[str, tuple[Callable[[Any], Any], Callable[[Any, Signals], bool]]] = {
    "new_device": (bool, lambda v, s: s.new_device == v),
    "country_changed": (bool, _country_changed),
    "recent_failures_at_least": (int, lambda v, s: s.recent_failures >= v),
    "ip_in": (lambda v: [ipaddress.ip_network(n, strict=False) for n in v], _ip_in),
    "client": (lambda v: [str(c) for c in v], lambda v, s: s.client_id in v),
}


@dataclass(frozen=True)
class Rule:
    index: int
    when: Mapping[str, Any]
    require: str
    source: Mapping[str, Any] = field(default_factory=dict)

    def matches(self, signals: Signals) -> bool:
        return all(CONDITIONS[name][1](value, signals) for name, value in self.when.items())

    def describe(self) -> str:
        conditions = ", ".join(f"{k}={v}" for k, v in self.source.items())
        return f"rule {self.index + 1} ({conditions}) requires {self.require}"


def parse_rules(raw: Iterable[Mapping[str, Any]] | None, ladder: Ladder) -> list[Rule]:
    """Validate and compile ``policy.rules``; raises PolicyError naming the bad entry."""
    rules = []
    for index, item in enumerate(raw or []):
        where = f"policy.rules[{index}]"
        if not isinstance(item, Mapping) or set(item) - {"when", "require"}:
            raise PolicyError(f"{where} must have only 'when' and 'require'")
        when = item.get("when")
        if not isinstance(when, Mapping) or not when:
            raise PolicyError(f"{where}.when must be a non-empty mapping")
        require = str(item.get("require"))
        if ladder.resolve(require) is None:
            raise PolicyError(f"{where}.require names unknown level {require!r}")
        compiled = {}
        for name, value in when.items():
            if name not in CONDITIONS:
                raise PolicyError(f"{where}.when has unknown condition {name!r} "
                                  f"(known: {', '.join(sorted(CONDITIONS))})")
            try:
                compiled[name] = CONDITIONS[name][0](value)
            except (TypeError, ValueError) as exc:
                raise PolicyError(f"{where}.when.{name}: {exc}") from None
        rules.append(Rule(index, compiled, ladder.resolve(require).name, dict(when)))  # type: ignore[union-attr]
    return rules


@dataclass(frozen=True)
class Decision:
    """The level the policy requires (None: nothing beyond any sign-in) and why."""

    required: str | None
    trace: tuple[str, ...]
    matched_rules: tuple[int, ...] = ()


def grace_logins_apply(policy: Mapping[str, Any]) -> bool:
    """Whether :func:`enforcement_requirement` can grant a grace sign-in, the only place
    that asks whether the user has factors (``Signals.user_has_factors``)."""
    return policy.get("enforcement", "optional") == "required" and \
        int(policy.get("grace_logins", 0)) > 0


def enforcement_requirement(policy: Mapping[str, Any], signals: Signals,
                            since: int | None) -> tuple[str | None, str]:
    """``enforcement: required`` asks for aal2 (after the grace sign-ins) from the users it
    applies to; ``optional`` asks for nothing (``off`` never gets here, see :func:`decide`)."""
    mode = policy.get("enforcement", "optional")
    if mode != "required":
        return None, f"enforcement is {mode}: no second factor required"
    if policy.get("applies_to") == "new_users" and since is not None and \
            (signals.user_created_at or 0) < since:
        return None, "enforcement applies to new users only; this user is older"
    # logins_without_mfa counts this sign-in too: with grace_logins N, sign-ins 1..N pass.
    grace = int(policy.get("grace_logins", 0))
    if grace and not signals.user_has_factors and signals.logins_without_mfa <= grace:
        left = grace - signals.logins_without_mfa
        return None, f"enforcement is required, but this is a grace sign-in ({left} left)"
    return "aal2", "enforcement is required: aal2"


def decide(policy: Mapping[str, Any], rules: list[Rule], ladder: Ladder, signals: Signals,
           since: int | None = None) -> Decision:
    """The level the MFA policy requires (DESIGN §5): enforcement, then every matching rule.

    ``enforcement: off`` switches the policy off as a whole: neither enforcement nor the
    adaptive rules raise the level (a relying party's own request still does; that is not
    policy). ``optional`` requires nothing by itself but lets the rules raise the level.
    """
    if policy.get("enforcement", "optional") == "off":
        return Decision(None, ("enforcement is off: the policy requires nothing "
                               "(adaptive rules not evaluated)",), ())
    required, why = enforcement_requirement(policy, signals, since)
    trace = [why]
    matched = []
    for rule in rules:
        if rule.matches(signals):
            matched.append(rule.index)
            trace.append(rule.describe())
            required = ladder.strongest(required, rule.require)
    return Decision(required, tuple(trace), tuple(matched))
