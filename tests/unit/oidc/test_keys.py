"""Signing keys: encryption at rest, pre-publication, rotation, retirement."""

from __future__ import annotations

import json
import time

import pytest
from joserfc import jwt
from sqlalchemy import select

from idp.crypto import DecryptionFailed, SecretBox
from idp.extensions import db
from idp.models import SigningKey
from idp.oidc import keyring


def _rows(alg=None):
    query = select(SigningKey)
    if alg:
        query = query.where(SigningKey.alg == alg)
    return db.session.scalars(query).all()


def test_init_creates_an_active_and_a_next_key_per_algorithm(app):
    with app.app_context():
        states = sorted((row.alg, row.state) for row in _rows())
        jwks = keyring().public_jwks()

    assert states == [("ES256", "active"), ("ES256", "next"), ("RS256", "active"),
                      ("RS256", "next")]
    assert len(jwks["keys"]) == 4
    assert len({k["kid"] for k in jwks["keys"]}) == 4
    assert {k["kty"] for k in jwks["keys"]} == {"RSA", "EC"}
    assert all("d" not in k and "p" not in k for k in jwks["keys"])
    assert {k.get("crv") for k in jwks["keys"] if k["kty"] == "EC"} == {"P-256"}


def test_private_keys_are_encrypted_with_the_master_secret(app):
    with app.app_context():
        row = _rows("RS256")[0]
        stored = row.private_jwk_encrypted

    assert stored.startswith("v1.")
    assert '"d"' not in stored
    with pytest.raises(DecryptionFailed):
        SecretBox("another-master-secret-of-enough-length!!", "signing-keys").decrypt(stored)
    opened = json.loads(SecretBox(app.config["SECRET_KEY"], "signing-keys").decrypt(stored))
    assert opened["kid"] == row.kid and "d" in opened


def test_rotation_promotes_the_prepublished_key_and_keeps_the_old_one_published(app):
    with app.app_context():
        ring = keyring()
        before = {row.state: row.kid for row in _rows("RS256")}
        now = int(time.time())
        rotation = ring.rotate("RS256", now=now)
        after = {row.kid: row for row in _rows("RS256")}
        published = {k["kid"] for k in ring.public_jwks()["keys"]}
        token = jwt.encode({"alg": "RS256"}, {"x": 1}, ring.signing_key("RS256"))

    assert rotation.active_kid == before["next"]
    assert rotation.retired_kid == before["active"]
    assert after[before["active"]].state == "retired"
    assert after[before["active"]].expires_at == now + ring._retire_after
    assert after[rotation.next_kid].state == "next"
    assert [r.state for r in after.values()].count("active") == 1
    assert {before["active"], before["next"], rotation.next_kid} <= published
    assert jwt.decode(token, ring.verification_keys()).header["kid"] == rotation.active_kid


def test_retired_keys_leave_the_jwks_once_their_tokens_expired(app):
    with app.app_context():
        ring = keyring()
        rotation = ring.rotate("RS256", now=1_000)  # expires long ago
        ring.invalidate()
        published = {k["kid"] for k in ring.public_jwks()["keys"]}
        purged = ring.purge_expired()
        remaining = {row.kid for row in _rows("RS256")}

    assert rotation.retired_kid not in published
    assert purged == 1
    assert rotation.retired_kid not in remaining


def test_exactly_one_active_key_per_algorithm_after_repeated_rotation(app):
    with app.app_context():
        ring = keyring()
        for _ in range(3):
            ring.rotate("ES256")
        actives = [row for row in _rows("ES256") if row.state == "active"]
        nexts = [row for row in _rows("ES256") if row.state == "next"]

    assert len(actives) == 1 and len(nexts) == 1


def test_unknown_algorithm_cannot_be_rotated(app):
    with app.app_context(), pytest.raises(ValueError, match="not configured"):
        keyring().rotate("HS256")


def test_id_tokens_are_signed_with_the_newly_active_key_after_rotation(flows, app):
    flows.user("alice")
    rp = flows.client("rp1")
    first = flows.sign_in(flows.browser(), rp)
    with app.app_context():
        rotation = keyring().rotate("RS256")

    second = flows.sign_in(flows.browser(), rp)

    assert jwt.decode(second.token["id_token"], rp.jwks()).header["kid"] == rotation.active_kid
    # Tokens signed with the retired key still verify against the published JWKS.
    assert rp.verify_id_token(first.token["id_token"])["sub"] == second.claims["sub"]
