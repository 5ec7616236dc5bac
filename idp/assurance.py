"""THE place that turns authentication events into ``acr``, ``amr`` and ``auth_time``.

Pure: imports nothing of the application, reads no clock (``now`` is a parameter).

- Levels (the acr ladder) are data: :class:`Level` built from configuration, weakest first;
  a higher level satisfies every lower one (DESIGN §3).
- ``amr`` values follow RFC 8176 plus ``pop`` (OpenID EAP ACR Values); ``mfa`` whenever the
  counted events span two factor categories (NIST SP 800-63B know/have/are, declared by each
  factor on its events) or include a user-verifying passkey.
- ``auth_time`` is the time of the latest event that counts toward the returned ``acr``
  (OIDC Core §2: the time the authentication that produced the acr occurred).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Event methods that are WebAuthn assertions.
WEBAUTHN_METHODS = frozenset({"passkey", "webauthn"})
EMAIL_METHOD = "email"

#: NIST SP 800-63B §5.1 authentication factor categories: something you know, have, are.
KNOW, HAVE, ARE = "know", "have", "are"
CATEGORIES = frozenset({KNOW, HAVE, ARE})


def default_category(method: str) -> str:
    """The category of an event stored before events carried one: only the password is
    something you know; every built-in second factor is something you have."""
    return KNOW if method == "password" else HAVE


@dataclass(frozen=True)
class AuthEvent:
    """What one factor proved, and when (seconds since the epoch)."""

    method: str
    factor_id: str | None
    amr: tuple[str, ...]
    at: int
    properties: Mapping[str, bool] = field(default_factory=dict)
    #: The factor's NIST SP 800-63B category (:data:`KNOW`, :data:`HAVE`, :data:`ARE`),
    #: declared by the factor; None means :func:`default_category` of the method.
    category: str | None = None

    @property
    def kind(self) -> str:
        return self.category or default_category(self.method)

    def prop(self, name: str) -> bool:
        return bool(self.properties.get(name, False))

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "factor_id": self.factor_id, "amr": list(self.amr),
                "at": self.at, "properties": dict(self.properties), "category": self.category}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuthEvent:
        return cls(method=str(data["method"]), factor_id=data.get("factor_id"),
                   amr=tuple(data.get("amr", ())), at=int(data["at"]),
                   properties=dict(data.get("properties", {})),
                   category=data.get("category"))


@dataclass(frozen=True)
class Level:
    name: str
    aliases: tuple[str, ...]
    min_factors: int
    phishing_resistant: bool
    hardware_bound: bool
    max_age: int
    idle_timeout: int | None


@dataclass(frozen=True)
class Held:
    """What one satisfied level reports: its own ``amr`` and ``auth_time`` (DESIGN §3)."""

    amr: tuple[str, ...]
    auth_time: int


@dataclass(frozen=True)
class Assurance:
    """The outcome for one session at one instant.

    ``acr``/``amr``/``auth_time`` are the strongest satisfied level's; ``held`` has each
    satisfied level's own (a weaker level counts older proofs, so they differ).
    """

    acr: str | None          # None: nothing proven (or everything expired)
    amr: tuple[str, ...]
    auth_time: int | None
    satisfied: frozenset[str]  # canonical names of every satisfied level
    #: For each satisfied level, when it stops being satisfied by these events (max ages
    #: only; idle timeouts depend on future activity).
    expires: dict[str, int] = field(default_factory=dict)
    held: dict[str, Held] = field(default_factory=dict)


@dataclass(frozen=True)
class Report:
    """The authentication to report for one request: acr as requested (a name or alias),
    that level's amr and auth_time, and the expiry of it and every weaker level."""

    acr: str | None
    amr: tuple[str, ...]
    auth_time: int | None
    expires: dict[str, int]


class Ladder:
    """The ordered levels; resolves aliases and evaluates events."""

    def __init__(self, levels: Sequence[Level], email_counts_as_factor: bool = False) -> None:
        if not levels:
            raise ValueError("the acr ladder needs at least one level")
        self.levels = tuple(levels)
        self.email_counts_as_factor = email_counts_as_factor
        self._by_value: dict[str, Level] = {}
        for level in self.levels:
            for value in (level.name, *level.aliases):
                if value in self._by_value:
                    raise ValueError(f"acr value {value!r} names two levels")
                self._by_value[value] = level

    @classmethod
    def from_config(cls, levels: Iterable[Mapping[str, Any]],
                    email_counts_as_factor: bool = False) -> Ladder:
        return cls([
            Level(name=str(item["name"]), aliases=tuple(str(a) for a in item.get("aliases", ())),
                  min_factors=int(item.get("min_factors", 1)),
                  phishing_resistant=bool(item.get("phishing_resistant", False)),
                  hardware_bound=bool(item.get("hardware_bound", False)),
                  max_age=int(item["max_age"]),
                  idle_timeout=None if item.get("idle_timeout") is None
                  else int(item["idle_timeout"]))
            for item in levels
        ], email_counts_as_factor)

    @property
    def values_supported(self) -> list[str]:
        """Every acr value a relying party may send: names, then aliases, weakest first."""
        names = [level.name for level in self.levels]
        aliases = [alias for level in self.levels for alias in level.aliases]
        return names + aliases

    def resolve(self, value: str) -> Level | None:
        """The level an acr value (name or alias) denotes, or None if unknown."""
        return self._by_value.get(value)

    def rank(self, value: str) -> int:
        """Position of a level on the ladder (0 = weakest); -1 if unknown."""
        level = self.resolve(value)
        return -1 if level is None else self.levels.index(level)

    def strongest(self, *values: str | None) -> str | None:
        """Canonical name of the strongest of the given values (unknown ones ignored)."""
        known = [self.resolve(v) for v in values if v]
        known_levels = [lvl for lvl in known if lvl is not None]
        if not known_levels:
            return None
        return max(known_levels, key=self.levels.index).name

    # -- evaluation ---------------------------------------------------------------------------

    def _strength(self, counted: Sequence[AuthEvent]) -> int:
        """How many factor categories the events prove (NIST SP 800-63B §5.1): distinct
        categories, a user-verifying WebAuthn assertion adding one more (its PIN or biometric
        is something you know or are). TOTP + SMS is one category: both are possessions."""
        return len({e.kind for e in counted}) + (
            1 if any(self._is_uv_passkey(e) for e in counted) else 0)

    def _counts(self, event: AuthEvent) -> bool:
        return self.counts_method(event.method)

    def counts_method(self, method: str) -> bool:
        """Whether proofs of ``method`` count as a factor at all (email only if configured)."""
        return method != EMAIL_METHOD or self.email_counts_as_factor

    @staticmethod
    def _is_uv_passkey(event: AuthEvent) -> bool:
        return event.method in WEBAUTHN_METHODS and event.prop("user_verified")

    def _counted(self, level: Level, events: Sequence[AuthEvent]) -> list[AuthEvent]:
        """The events that count as factors toward ``level``."""
        # A remembered device stands in for a second factor only below phishing resistance.
        return [e for e in events if self._counts(e)
                and not (level.phishing_resistant and e.prop("remembered"))]

    def _meets(self, level: Level, events: Sequence[AuthEvent]) -> bool:
        counted = self._counted(level, events)
        if self._strength(counted) < level.min_factors:
            return False
        if level.phishing_resistant and not any(e.method in WEBAUTHN_METHODS for e in counted):
            return False
        if level.hardware_bound and not any(
            self._is_uv_passkey(e) and e.prop("device_bound") and e.prop("hardware_attested")
            for e in counted
        ):
            return False
        return True

    def _fresh(self, level: Level, events: Sequence[AuthEvent], now: int,
               last_active: int | None) -> list[AuthEvent]:
        if level.idle_timeout is not None and last_active is not None \
                and now - last_active > level.idle_timeout:
            return []
        return [e for e in events if now - e.at <= level.max_age and e.at <= now]

    def evaluate(self, events: Sequence[AuthEvent], now: int,
                 last_active: int | None = None) -> Assurance:
        """acr, amr and auth_time of a session holding ``events`` at ``now``.

        ``last_active`` is the session's last activity, for the levels' idle timeouts. A level
        is satisfied only if every weaker level is too, so the ladder stays monotone.
        """
        satisfied: list[Level] = []
        counted_for: dict[str, list[AuthEvent]] = {}
        for level in self.levels:
            fresh = self._fresh(level, events, now, last_active)
            if not self._meets(level, fresh):
                break
            satisfied.append(level)
            counted_for[level.name] = fresh
        if not satisfied:
            return Assurance(None, (), None, frozenset())
        held = {level.name: self._held(level, counted_for[level.name]) for level in satisfied}
        top = held[satisfied[-1].name]
        expires = {level.name: self._expiry(level, counted_for[level.name])
                   for level in satisfied}
        # A level cannot outlive a weaker one it builds on (the ladder is monotone).
        running = None
        for level in satisfied:
            running = expires[level.name] if running is None else min(running,
                                                                      expires[level.name])
            expires[level.name] = running
        return Assurance(
            acr=satisfied[-1].name,
            amr=top.amr,
            auth_time=top.auth_time,
            satisfied=frozenset(level.name for level in satisfied),
            expires=expires,
            held=held,
        )

    def _held(self, level: Level, fresh: Sequence[AuthEvent]) -> Held:
        """``level``'s amr (from its fresh events, :meth:`amr_within`) and auth_time (the
        latest event counted toward it: OIDC Core §2)."""
        counted = self._counted(level, fresh) or list(fresh)
        return Held(self.amr_within(self.amr_for(fresh), level.name),
                    max(e.at for e in counted))

    def report(self, assurance: Assurance, requested: Sequence[str] = ()) -> Report:
        """What to put in tokens for a request that asked ``requested`` (preference order):
        the first requested value whose level is satisfied, else the strongest satisfied
        level (DESIGN §4.6), with that level's own amr and auth_time. ``expires`` keeps only
        that level and weaker ones, so a later refresh never reports more
        (:meth:`still_holds`)."""
        if assurance.acr is None:
            return Report(None, (), None, {})
        acr = next((value for value in requested
                    if (lvl := self.resolve(value)) is not None
                    and lvl.name in assurance.satisfied), assurance.acr)
        level = self.resolve(acr)
        assert level is not None
        held = assurance.held[level.name]
        rank = self.levels.index(level)
        expires = {name: at for name, at in assurance.expires.items()
                   if self.rank(name) <= rank}
        return Report(acr, held.amr, held.auth_time, expires)

    def _expiry(self, level: Level, events: Sequence[AuthEvent]) -> int:
        """When ``level`` stops holding as ``events`` age out (each after ``max_age``)."""
        remaining = sorted(events, key=lambda e: e.at)
        while remaining:
            oldest = remaining[0].at + level.max_age
            later = [e for e in remaining if e.at + level.max_age > oldest]
            if not self._meets(level, later):
                return oldest
            remaining = later
        return 0

    def amr_within(self, amr: Sequence[str], acr: str) -> tuple[str, ...]:
        """``amr`` as reported with ``acr``: a single-factor level does not claim ``mfa``, even
        if older proofs remain fresh enough for it (amr must not promise more than acr)."""
        level = self.resolve(acr)
        if level is not None and level.min_factors < 2:
            return tuple(v for v in amr if v != "mfa")
        return tuple(amr)

    def still_holds(self, acr: str | None, expires: Mapping[str, int],
                    now: int) -> str | None:
        """The acr to report at ``now`` for a snapshot taken earlier: ``acr`` itself while its
        level holds, else the strongest weaker level that still does, else None (DESIGN §3:
        elevation expires, never raised)."""
        level = self.resolve(acr) if acr else None
        if level is None:
            return None
        if expires.get(level.name, 0) > now:
            return acr
        for weaker in reversed(self.levels[:self.levels.index(level)]):
            if expires.get(weaker.name, 0) > now:
                return weaker.name
        return None

    def amr_for(self, events: Sequence[AuthEvent]) -> tuple[str, ...]:
        """RFC 8176 values of the events, in first-seen order, plus ``mfa`` where earned."""
        values: list[str] = []
        for event in events:
            for value in event.amr:
                if value not in values:
                    values.append(value)
        counted = [e for e in events if self._counts(e)]
        if self._strength(counted) >= 2 and "mfa" not in values:
            values.append("mfa")
        return tuple(values)

    def satisfies(self, events: Sequence[AuthEvent], value: str, now: int,
                  last_active: int | None = None, max_age: int | None = None) -> bool:
        """Does the session satisfy level ``value`` now, with that level's own ``auth_time``
        within ``max_age``?"""
        level = self.resolve(value)
        if level is None:
            return False
        result = self.evaluate(events, now, last_active)
        if level.name not in result.satisfied:
            return False
        if max_age is not None:
            return now - result.held[level.name].auth_time <= max_age
        return True
