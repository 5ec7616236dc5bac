"""oidcc-server-rotate-keys (oidcc-dynamic-certification-test-plan, CONFORMANCE.md §1.4),
with the rotation triggered through the application's keyring instead of by the tester."""

from __future__ import annotations

from tests.conformance.support import check_id_token, code_flow, fetch_jwks


def test_oidcc_server_rotate_keys(app, alice, rp, browser):
    """oidcc-server-rotate-keys: the jwks before and after a signing-key rotation are valid
    (kids present and distinct, public keys only); afterwards the jwks has a new key and still
    has the old one (a WARNING in the suite, required here). Beyond the suite, which does not
    look at tokens: a new ID token is signed with the newly active kid and verifies, and the
    ID token signed before the rotation still verifies against the new jwks."""
    before = code_flow(browser, rp)
    original = fetch_jwks(rp.issuer)  # validated: ValidateServerJWKs, CheckForKeyIdInServerJWKs...
    original_kids = {k["kid"] for k in original["keys"]}
    old_kid = before.id_token.header["kid"]
    assert old_kid in original_kids

    with app.app_context():
        from idp import oidc

        rotation = oidc.keyring().rotate("RS256")
    assert rotation.retired_kid == old_kid

    rotated = fetch_jwks(rp.issuer)
    rotated_kids = {k["kid"] for k in rotated["keys"]}
    assert rotated_kids - original_kids, "VerifyNewJwksHasNewSigningKey: no new key"
    assert old_kid in rotated_kids, "VerifyNewJwksStillHasOldSigningKey: old key dropped"

    after = code_flow(browser, rp)
    assert after.id_token.header["kid"] == rotation.active_kid != old_kid
    check_id_token(rp, after.id_token.raw, nonce=after.request.nonce,
                   access_token=after.token["access_token"], jwks=rotated)
    check_id_token(rp, before.id_token.raw, nonce=before.request.nonce,
                   access_token=before.token["access_token"], jwks=rotated)
