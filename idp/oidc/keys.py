"""Signing keys: generation, encryption at rest, the public JWKS and rotation.

Exactly one ``active`` key per algorithm signs (joserfc would pick at random among several).
``idp keys rotate`` promotes the pre-published ``next`` key, retires the old active key (still
published until every token it signed has expired) and pre-publishes a fresh ``next`` key, so
relying parties that cache the JWKS already know a key before it signs anything.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from joserfc.jwk import ECKey, KeySet, RSAKey, import_key
from sqlalchemy import delete, select

from idp.crypto import SecretBox
from idp.extensions import db
from idp.models import SigningKey

KEY_PURPOSE = "signing-keys"
#: How long a process trusts its cached view of which keys are active/published.
CACHE_SECONDS = 30


@dataclass(frozen=True)
class Rotation:
    alg: str
    retired_kid: str | None
    active_kid: str
    next_kid: str


class KeyRing:
    """Per-app access to the signing keys, with a short cache of the key table."""

    def __init__(self, master_secret: str, algorithms: list[str], rsa_bits: int,
                 retire_after: int) -> None:
        self._box = SecretBox(master_secret, KEY_PURPOSE)
        self.algorithms = list(algorithms)
        self._rsa_bits = rsa_bits
        self._retire_after = retire_after
        self._lock = threading.Lock()
        self._loaded_at = 0.0
        self._active: dict[str, KeySet] = {}
        self._public: dict[str, dict] = {}
        self._private_cache: dict[str, KeySet] = {}
        # Importing a JWK parses big integers; the imported set is rebuilt only when the
        # published set changes, not on every token verification.
        self._verification = KeySet([])

    # -- creation ----------------------------------------------------------------------------

    def _generate(self, alg: str, state: str, now: int) -> SigningKey:
        params = {"alg": alg, "use": "sig"}
        key = (RSAKey.generate_key(self._rsa_bits, parameters=params, private=True)
               if alg == "RS256"
               else ECKey.generate_key("P-256", parameters=params, private=True))
        kid = key.thumbprint()
        private = key.as_dict(private=True)
        private["kid"] = kid
        public = key.as_dict(private=False)
        public["kid"] = kid
        row = SigningKey(
            kid=kid, alg=alg, state=state,
            private_jwk_encrypted=self._box.encrypt(_json_bytes(private)),
            public_jwk=public, created_at=now,
            activated_at=now if state == "active" else None,
        )
        db.session.add(row)
        return row

    def ensure(self, now: int | None = None) -> list[str]:
        """Create the missing active and next keys for each algorithm; returns new kids."""
        now = int(time.time()) if now is None else now
        created: list[str] = []
        for alg in self.algorithms:
            states = set(db.session.scalars(
                select(SigningKey.state).where(SigningKey.alg == alg)))
            for state in ("active", "next"):
                if state not in states:
                    created.append(self._generate(alg, state, now).kid)
        if created:
            db.session.commit()
            self.invalidate()
        return created

    def rotate(self, alg: str, now: int | None = None) -> Rotation:
        """Promote next → active, active → retired, and pre-publish a new next key."""
        if alg not in self.algorithms:
            raise ValueError(f"algorithm {alg!r} is not configured")
        now = int(time.time()) if now is None else now
        rows = db.session.scalars(
            select(SigningKey).where(SigningKey.alg == alg, SigningKey.state != "retired")
            .with_for_update()
        ).all()
        active = next((r for r in rows if r.state == "active"), None)
        upcoming = next((r for r in rows if r.state == "next"), None)
        if upcoming is None:
            upcoming = self._generate(alg, "next", now)
        if active is not None:
            active.state = "retired"
            active.retired_at = now
            active.expires_at = now + self._retire_after
        upcoming.state = "active"
        upcoming.activated_at = now
        fresh = self._generate(alg, "next", now)
        db.session.commit()
        self.invalidate()
        return Rotation(alg, active.kid if active else None, upcoming.kid, fresh.kid)

    def purge_expired(self, now: int | None = None) -> int:
        """Delete retired keys whose tokens have all expired; returns how many."""
        now = int(time.time()) if now is None else now
        result = db.session.execute(
            delete(SigningKey).where(SigningKey.state == "retired", SigningKey.expires_at <= now))
        db.session.commit()
        self.invalidate()
        return int(result.rowcount or 0)

    # -- reading -----------------------------------------------------------------------------

    def invalidate(self) -> None:
        with self._lock:
            self._loaded_at = 0.0

    def _load(self) -> None:
        if time.monotonic() - self._loaded_at < CACHE_SECONDS:
            return
        now = int(time.time())
        rows = db.session.scalars(select(SigningKey)).all()
        active: dict[str, KeySet] = {}
        public: dict[str, dict] = {}
        for row in rows:
            if row.state == "retired" and row.expires_at is not None and row.expires_at <= now:
                continue
            public[row.kid] = dict(row.public_jwk)
            if row.state == "active":
                active[row.alg] = self._private(row)
        with self._lock:
            if public != self._public or not self._verification.keys:
                self._verification = KeySet([import_key(jwk) for jwk in public.values()])
            self._active, self._public = active, public
            self._loaded_at = time.monotonic()

    def _private(self, row: SigningKey) -> KeySet:
        cached = self._private_cache.get(row.kid)
        if cached is None:
            data = _json_loads(self._box.decrypt(row.private_jwk_encrypted))
            cached = KeySet([import_key(data)])
            self._private_cache[row.kid] = cached
        return cached

    def signing_key(self, alg: str) -> KeySet:
        """The one active key for ``alg``, as a one-key KeySet (so the JWS header gets its kid)."""
        self._load()
        try:
            return self._active[alg]
        except KeyError:
            raise LookupError(f"no active signing key for {alg}; run `idp init`") from None

    def public_jwks(self) -> dict:
        """The published keys: next, active, and retired ones not yet expired (RFC 7517)."""
        self._load()
        return {"keys": list(self._public.values())}

    def verification_keys(self) -> KeySet:
        """Every published public key, for verifying our own tokens."""
        self._load()
        return self._verification


def _json_bytes(data: dict) -> bytes:
    import json

    return json.dumps(data, separators=(",", ":")).encode()


def _json_loads(raw: bytes) -> dict:
    import json

    return json.loads(raw)
