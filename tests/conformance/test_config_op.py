"""oidcc-config-certification-test-plan ("Config OP", CONFORMANCE.md §1.2):
oidcc-discovery-endpoint-verification, variant discovery + static client."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from tests.conformance.support import discovery, fetch_jwks

URL = "url"
STRINGS = "strings"
BOOL = "bool"

#: Provider metadata members with their JSON types: OIDC Discovery 1.0 §3, RFC 8414 §2,
#: RFC 7009/7662 (revocation/introspection), RFC 9207 (iss), RP-Initiated Logout 1.0 §2.1,
#: Session Management, Front-/Back-Channel Logout, prompt=create, RFC 9126 (PAR), RFC 9101
#: (JAR), RFC 8705 (mTLS), RFC 9449 (DPoP), RFC 8628 (device authorization).
KNOWN_MEMBERS: dict[str, str] = {
    "issuer": URL, "authorization_endpoint": URL, "token_endpoint": URL,
    "userinfo_endpoint": URL, "jwks_uri": URL, "registration_endpoint": URL,
    "scopes_supported": STRINGS, "response_types_supported": STRINGS,
    "response_modes_supported": STRINGS, "grant_types_supported": STRINGS,
    "acr_values_supported": STRINGS, "subject_types_supported": STRINGS,
    "id_token_signing_alg_values_supported": STRINGS,
    "id_token_encryption_alg_values_supported": STRINGS,
    "id_token_encryption_enc_values_supported": STRINGS,
    "userinfo_signing_alg_values_supported": STRINGS,
    "userinfo_encryption_alg_values_supported": STRINGS,
    "userinfo_encryption_enc_values_supported": STRINGS,
    "request_object_signing_alg_values_supported": STRINGS,
    "request_object_encryption_alg_values_supported": STRINGS,
    "request_object_encryption_enc_values_supported": STRINGS,
    "token_endpoint_auth_methods_supported": STRINGS,
    "token_endpoint_auth_signing_alg_values_supported": STRINGS,
    "display_values_supported": STRINGS, "claim_types_supported": STRINGS,
    "claims_supported": STRINGS, "service_documentation": URL,
    "claims_locales_supported": STRINGS, "ui_locales_supported": STRINGS,
    "claims_parameter_supported": BOOL, "request_parameter_supported": BOOL,
    "request_uri_parameter_supported": BOOL, "require_request_uri_registration": BOOL,
    "op_policy_uri": URL, "op_tos_uri": URL,
    "revocation_endpoint": URL, "revocation_endpoint_auth_methods_supported": STRINGS,
    "revocation_endpoint_auth_signing_alg_values_supported": STRINGS,
    "introspection_endpoint": URL, "introspection_endpoint_auth_methods_supported": STRINGS,
    "introspection_endpoint_auth_signing_alg_values_supported": STRINGS,
    "code_challenge_methods_supported": STRINGS,
    "authorization_response_iss_parameter_supported": BOOL,
    "end_session_endpoint": URL, "check_session_iframe": URL,
    "frontchannel_logout_supported": BOOL, "frontchannel_logout_session_supported": BOOL,
    "backchannel_logout_supported": BOOL, "backchannel_logout_session_supported": BOOL,
    "prompt_values_supported": STRINGS,
    "pushed_authorization_request_endpoint": URL,
    "require_pushed_authorization_requests": BOOL, "require_signed_request_object": BOOL,
    "tls_client_certificate_bound_access_tokens": BOOL,
    "dpop_signing_alg_values_supported": STRINGS,
    "device_authorization_endpoint": URL,
}
RESPONSE_TYPE_PARTS = frozenset({"code", "id_token", "token", "none"})
OIDC_RESPONSE_TYPES = ("code", "code id_token", "id_token", "token id_token",
                       "code id_token token", "code token")
#: RFC 6749 §3.3 scope-token: %x21 / %x23-5B / %x5D-7E.
SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5B\x5D-\x7E]+$")
#: BCP 47 language tag, simplified (language[-script][-region][-variant...]).
LOCALE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z]{4})?(-([A-Za-z]{2}|[0-9]{3}))?(-[A-Za-z0-9]{5,8})*$")


def _canonical_locale(tag: str) -> str:
    parts = tag.split("-")
    out = [parts[0].lower()]
    for part in parts[1:]:
        out.append(part.title() if len(part) == 4 and part.isalpha() else
                   part.upper() if len(part) == 2 else part.lower())
    return "-".join(out)


def _check_member_types(metadata: dict[str, Any]) -> None:
    for name, value in metadata.items():
        kind = KNOWN_MEMBERS[name]
        if kind == URL:
            parts = urlsplit(value) if isinstance(value, str) else None
            assert parts and parts.scheme in ("http", "https") and parts.netloc, (name, value)
            assert not parts.fragment, (name, value)
        elif kind == STRINGS:
            assert isinstance(value, list) and value, (name, value)
            assert all(isinstance(v, str) and v for v in value), (name, value)
            assert len(value) == len(set(value)), f"{name} has duplicates"
        else:
            assert isinstance(value, bool), (name, value)


def test_oidcc_discovery_endpoint_verification(live_server):
    """oidcc-discovery-endpoint-verification: the discovery document is 200 JSON; issuer
    matches the discovery URL and is a valid URL; RFC 8414 / OIDC Discovery members are known
    and well-typed; response types, subject types, RS256 ID-token signing, endpoints, jwks_uri
    (fetchable, valid, distinct kids, public keys only), request/claims parameter flags,
    claims_supported, grant types, scopes_supported with openid and valid syntax, locales,
    endpoints on the issuer, and code_challenge_methods_supported as an array."""
    issuer = live_server.url
    discovery_url = f"{issuer}/.well-known/openid-configuration"
    metadata = discovery(issuer)

    # CheckDiscEndpointDiscoveryUrl / CheckDiscEndpointIssuer / CheckDiscEndpointIssuerIsValidUrl
    assert discovery_url.endswith("/.well-known/openid-configuration")
    expected_issuer = discovery_url[: -len("/.well-known/openid-configuration")]
    assert metadata["issuer"].rstrip("/") == expected_issuer.rstrip("/")
    assert metadata["issuer"] == issuer
    parts = urlsplit(metadata["issuer"])
    assert parts.scheme in ("http", "https") and parts.netloc
    assert not parts.query and not parts.fragment  # RFC 8414 §2

    # Schema (RFC 8414 §2, OIDC Discovery §3): no unexpected members (a WARNING in the suite,
    # required here), every member of its type.
    unexpected = set(metadata) - set(KNOWN_MEMBERS)
    assert not unexpected, f"unexpected members: {sorted(unexpected)}"
    _check_member_types(metadata)

    # OIDCCCheckDiscEndpointResponseTypesSupported
    response_types = metadata["response_types_supported"]
    assert any(t in OIDC_RESPONSE_TYPES for t in response_types), response_types
    for value in response_types:
        assert set(value.split()) <= RESPONSE_TYPE_PARTS, value
    assert "code" in response_types

    # CheckDiscEndpointSubjectTypesSupported
    subject_types = metadata["subject_types_supported"]
    assert set(subject_types) <= {"public", "pairwise"} and subject_types

    # OIDCCCheckDiscEndpointIdTokenSigningAlgValuesSupported (+ userinfo algs if present)
    # (userinfo_signing_alg_values_supported, if present, was type-checked above)
    assert "RS256" in metadata["id_token_signing_alg_values_supported"]

    # CheckDiscEndpointAuthorizationEndpoint / TokenEndpoint / UserinfoEndpoint
    for name in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint"):
        assert isinstance(metadata.get(name), str), f"{name} missing"

    # CheckJwksUri + FetchServerKeys + ValidateServerJWKs +
    # EnsureServerJwksDoesNotContainPrivateOrSymmetricKeys
    assert isinstance(metadata.get("jwks_uri"), str)
    jwks = fetch_jwks(issuer)
    assert any(k["kty"] == "RSA" for k in jwks["keys"]), "no RSA key for RS256"

    # CheckDiscEndpointRequestParameterSupported / RequestUriParameterSupported /
    # CheckDiscEndpointClaimsParameterSupported (INFO in the suite: booleans when present)
    for flag in ("request_parameter_supported", "request_uri_parameter_supported",
                 "claims_parameter_supported"):
        if flag in metadata:
            assert isinstance(metadata[flag], bool), flag
    if "request_object_signing_alg_values_supported" in metadata:
        assert "RS256" in metadata["request_object_signing_alg_values_supported"]

    # OIDCCCheckDiscEndpointClaimsSupported (WARNING in the suite: present, an array)
    assert "sub" in metadata["claims_supported"]

    # OIDCCCheckDiscEndpointGrantTypesSupported: present ⇒ non-empty array
    assert "authorization_code" in metadata["grant_types_supported"]

    # CheckDiscEndpointScopesSupportedContainsOpenId / ScopesSupportedSyntax
    scopes = metadata["scopes_supported"]
    assert "openid" in scopes
    for scope in scopes:
        assert SCOPE_TOKEN.match(scope), scope

    # CheckDiscEndpointLocalesSyntax / CheckDiscEndpointLocalesCanonicalCasing
    for name in ("ui_locales_supported", "claims_locales_supported"):
        for tag in metadata.get(name, []):
            assert LOCALE.match(tag), (name, tag)
            assert tag == _canonical_locale(tag), (name, tag)

    # CheckDiscEndpointAllEndpointsAreHttps: the tests run on http://localhost:<port>, so
    # "https" is asserted as "every endpoint is under the issuer" (same scheme and origin).
    for name, value in metadata.items():
        if KNOWN_MEMBERS[name] == URL and name != "issuer":
            assert value.startswith(issuer + "/"), (name, value)

    # EnsureServerConfigurationCodeChallengeMethodsSupportedIsAnArray
    assert isinstance(metadata["code_challenge_methods_supported"], list)
    assert "S256" in metadata["code_challenge_methods_supported"]
