"""Prepare a benchmark instance through the project's own Python APIs.

``python -m benchmarks.seed CONFIG MANIFEST`` migrates the database named by the YAML
``CONFIG`` (``idp init``'s code path), creates the signing keys, then:

- ``session_users`` users through :func:`idp.users.create_user` (one argon2id hash each, with
  the configured production parameters);
- ``totp_users`` users for the TOTP pool, inserted through the ORM with one precomputed
  password hash (the hash of the first user: same password, so sign-in verifies it for real);
  the first ``REAL_ENROLLMENTS`` are enrolled in TOTP through
  :class:`idp.factors.service.MfaService` inside ``app.test_request_context()`` (the
  enrollment every user goes through, ~0.1 s each, mostly QR rendering), the rest get copies
  of those credential rows (same sealed seed, their own row and replay counter);
- a first-party confidential relying party (``client_secret_basic``, code + refresh) and a
  resource server (``client_credentials`` with ``idp:introspect``) through
  :func:`idp.oidc.clients.register_client`.

The manifest (JSON) tells the driver the issuer, the client secrets, the users and the TOTP
seeds with the time step each enrollment consumed (a TOTP code works once per credential).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

#: Every benchmark user's password (never a real one; the instance lives in a scratch folder).
PASSWORD = "bench-password-correct-horse"
#: The relying party's registered redirect URI: on loopback, never contacted by the driver
#: (it stops at the redirect and reads the code from the Location header).
REDIRECT_URI = "http://127.0.0.1:9/bench/callback"
RP_CLIENT_ID = "bench-rp"
RS_CLIENT_ID = "bench-rs"
TOTP_INTERVAL = 30
#: TOTP enrollments done through the factor service; the rest of the pool copies them.
REAL_ENROLLMENTS = 8


def _enroll_totp(service: Any, users: list[Any]) -> list[tuple[Any, str, int]]:
    """Enroll and verify TOTP for each user through the factor service (the enrollment every
    user goes through); returns (credential, base32 seed, time step consumed)."""
    import pyotp

    enrolled = []
    for user in users:
        started = service.begin_enrollment(user, "totp", {})
        secret = started.step.display.data["secret"]
        step = int(time.time()) // TOTP_INTERVAL
        proven = service.finish_enrollment(user, started.id,
                                           {"code": pyotp.TOTP(secret).at(step * TOTP_INTERVAL)})
        enrolled.append((proven.credential, secret, int(proven.credential.counter)))
    return enrolled


def seed(config_path: str, session_users: int, totp_users: int) -> dict[str, Any]:
    """Migrate, create keys, users, clients and TOTP enrollments; returns the manifest."""
    from sqlalchemy import select

    from idp import create_app
    from idp.cli import initialise
    from idp.extensions import db
    from idp.factors.service import MfaService
    from idp.models import Credential, User
    from idp.oidc.clients import register_client
    from idp.users import create_user

    started = time.perf_counter()
    logging.getLogger("idp.audit").setLevel(logging.WARNING)  # thousands of JSON lines
    app = create_app(environ={"IDP_CONFIG": config_path})
    initialise(app)
    settings = app.extensions["idp.settings"]
    manifest: dict[str, Any] = {
        "kind": "stepup-idp", "issuer": settings.issuer, "password": PASSWORD,
        "redirect_uri": REDIRECT_URI, "users": [], "totp_users": [],
        "password_params": {"time_cost": settings.password.time_cost,
                            "memory_cost": settings.password.memory_cost,
                            "parallelism": settings.password.parallelism},
    }
    with app.app_context():
        names = [f"bench-{i:04d}" for i in range(session_users)]
        shared_hash = ""
        for name in names:
            user = create_user(username=name, password=PASSWORD, email=f"{name}@bench.test",
                               name=name.title(), email_verified=True, actor="bench")
            shared_hash = shared_hash or user.password_hash or ""
        manifest["users"] = names
        pool = [f"totp-{i:05d}" for i in range(totp_users)]
        db.session.add_all(
            User(username=name, email=f"{name}@bench.test", email_verified=True,
                 name=name.title(), password_hash=shared_hash) for name in pool)
        db.session.commit()
        rp = register_client(name="Benchmark RP", client_id=RP_CLIENT_ID,
                             redirect_uris=[REDIRECT_URI], first_party=True,
                             grant_types=["authorization_code", "refresh_token"])
        rs = register_client(name="Benchmark resource server", client_id=RS_CLIENT_ID,
                             redirect_uris=[], grant_types=["client_credentials"],
                             scope="idp:introspect")
        manifest["client"] = {"client_id": rp.client.client_id, "client_secret": rp.secret}
        manifest["resource_server"] = {"client_id": rs.client.client_id,
                                       "client_secret": rs.secret}
    with app.test_request_context():
        users = {u.username: u for u in db.session.scalars(
            select(User).where(User.username.in_(pool)))}
        enrolled = _enroll_totp(MfaService(), [users[n] for n in pool[:REAL_ENROLLMENTS]])
        # The rest of the pool gets copies of those credential rows: same sealed seed, own
        # row and own replay counter, so every verification does the same work.
        clones = []
        for index, name in enumerate(pool[REAL_ENROLLMENTS:]):
            source, secret, step = enrolled[index % len(enrolled)]
            clones.append(Credential(
                user_id=users[name].id, method="totp", name=source.name, status="verified",
                secret_encrypted=source.secret_encrypted, data={}, counter=source.counter,
                created_at=source.created_at))
            manifest["totp_users"].append({"username": name, "secret": secret,
                                           "last_step": step})
        db.session.add_all(clones)
        db.session.commit()
        manifest["totp_users"][:0] = [
            {"username": name, "secret": secret, "last_step": step}
            for name, (_, secret, step) in zip(pool, enrolled, strict=False)]
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    manifest["seed_seconds"] = round(time.perf_counter() - started, 2)
    return manifest


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m benchmarks.seed CONFIG MANIFEST [--session-users N] [--totp-users M]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("manifest")
    parser.add_argument("--session-users", type=int, default=40)
    parser.add_argument("--totp-users", type=int, default=600)
    args = parser.parse_args(argv)
    manifest = seed(args.config, args.session_users, args.totp_users)
    Path(args.manifest).write_text(json.dumps(manifest, indent=1), "utf-8")
    print(f"seeded {len(manifest['users'])} users, {len(manifest['totp_users'])} TOTP users "
          f"in {manifest['seed_seconds']} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
