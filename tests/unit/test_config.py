"""idp.config.load_settings: defaults < IDP_CONFIG file < IDP_* variables, validated once."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from idp.config import ConfigError, load_settings

PRODUCTION = {"IDP_ENVIRONMENT": "production", "IDP_ISSUER": "https://idp.example.com"}
GOOD_SECRET = "s" * 32


@pytest.fixture
def config_file(tmp_path: Path) -> Any:
    """Write a mapping (or raw text) as the IDP_CONFIG file; returns the environ naming it."""

    def write(content: dict[str, Any] | str) -> dict[str, str]:
        path = tmp_path / "idp.yaml"
        path.write_text(content if isinstance(content, str) else yaml.safe_dump(content),
                        "utf-8")
        return {"IDP_CONFIG": str(path)}

    return write


@pytest.mark.parametrize(
    ("dotted", "expected"),
    [
        ("issuer", "http://localhost:5000"),
        ("environment", "development"),
        ("secret_key", None),
        ("redis_url", None),
        ("tokens.access_token_ttl", 900),
        ("keys.algorithms", ["RS256", "ES256"]),
        ("policy.email_counts_as_factor", False),
        ("oidc.client_cache_ttl", 30),
    ],
)
def test_defaults_load_without_file_or_variables(dotted: str, expected: Any) -> None:
    assert load_settings(environ={}).get(dotted) == expected


def test_default_acr_ladder_weakest_first() -> None:
    levels = load_settings(environ={}).get("acr.levels")
    assert [level["name"] for level in levels] == ["aal1", "aal2", "phr", "phrh"]


def test_defaults_are_development() -> None:
    settings = load_settings(environ={})
    assert (settings.production, settings.secure_cookies) == (False, False)


def test_file_overlays_the_defaults(config_file: Any) -> None:
    environ = config_file({"issuer": "https://idp.example.com",
                           "tokens": {"access_token_ttl": 120}})
    settings = load_settings(environ=environ)
    assert settings.issuer == "https://idp.example.com"
    assert settings.tokens.access_token_ttl == 120
    assert settings.tokens.id_token_ttl == 3600, "siblings of an overridden key keep defaults"


def test_empty_file_keeps_the_defaults(config_file: Any) -> None:
    assert load_settings(environ=config_file("")).tokens.access_token_ttl == 900


@pytest.mark.parametrize(
    ("name", "raw", "dotted", "expected"),
    [
        pytest.param("IDP_TOKENS__ACCESS_TOKEN_TTL", "300", "tokens.access_token_ttl", 300,
                     id="int"),
        pytest.param("IDP_ISSUER", "https://idp.example.com", "issuer", "https://idp.example.com",
                     id="str"),
        pytest.param("IDP_POLICY__EMAIL_COUNTS_AS_FACTOR", "true",
                     "policy.email_counts_as_factor", True, id="bool"),
        pytest.param("IDP_KEYS__ALGORITHMS", "[RS256]", "keys.algorithms", ["RS256"],
                     id="list"),
        pytest.param("IDP_REDIS_URL", "redis://cache:6379/0", "redis_url", "redis://cache:6379/0",
                     id="str for a null default"),
        pytest.param("IDP_SERVER__HOST", "0.0.0.0", "server.host", "0.0.0.0",
                     id="dotted str stays str"),
        pytest.param(
            "IDP_BRANDING__PRIMARY_COLOR", "#ff0000", "branding.primary_color", "#ff0000",
            id="str starting with #"),
    ],
)
def test_variable_overlays_with_the_type_of_the_default(name: str, raw: str, dotted: str,
                                                         expected: Any) -> None:
    value = load_settings(environ={name: raw}).get(dotted)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("in_file", "in_env", "expected"),
    [
        pytest.param(None, None, 900, id="default"),
        pytest.param(120, None, 120, id="file over default"),
        pytest.param(None, "300", 300, id="variable over default"),
        pytest.param(120, "300", 300, id="variable over file"),
    ],
)
def test_precedence_variable_over_file_over_default(config_file: Any, in_file: int | None,
                                                   in_env: str | None, expected: int) -> None:
    environ = config_file({"tokens": {"access_token_ttl": in_file}} if in_file else {})
    if in_env:
        environ["IDP_TOKENS__ACCESS_TOKEN_TTL"] = in_env
    assert load_settings(environ=environ).tokens.access_token_ttl == expected


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param({"tokens": {"acess_token_ttl": 60}}, "'tokens.acess_token_ttl'",
                     id="unknown nested key"),
        pytest.param({"isuer": "https://idp.example.com"}, "'isuer'", id="unknown top-level key"),
        pytest.param({"acr": {"levels": [], "extra": 1}}, "'acr.extra'", id="unknown key in acr"),
        pytest.param({"tokens": {"access_token_ttl": "soon"}}, "'tokens.access_token_ttl'",
                     id="string for an int"),
        pytest.param({"tokens": {"access_token_ttl": True}}, "'tokens.access_token_ttl'",
                     id="bool for an int"),
        pytest.param({"audit": {"log_json": "yes please"}}, "'audit.log_json'",
                     id="string for a bool"),
        pytest.param({"keys": {"algorithms": "RS256"}}, "'keys.algorithms'",
                     id="string for a list"),
        pytest.param({"tokens": 5}, "'tokens'", id="scalar for a section"),
        pytest.param({"tokens": {"access_token_ttl": 0}}, "'tokens.access_token_ttl'",
                     id="zero ttl"),
        pytest.param({"keys": {"algorithms": ["HS256", "RS256"]}}, "'keys.algorithms'",
                     id="unsupported algorithm"),
        pytest.param({"environment": "staging"}, "'environment'", id="unknown environment"),
        pytest.param({"session": {"cookie_name": "__Host-idp"}}, "'session.cookie_name'",
                     id="host-prefixed cookie on http"),
        pytest.param({"tokens": {"access_token_audience": [""]}},
                     "'tokens.access_token_audience'", id="empty audience"),
        pytest.param({"tokens": {"access_token_audience": [42]}},
                     "'tokens.access_token_audience'", id="number as audience"),
        pytest.param({"tokens": {"access_token_audience": "https://api.example.com"}},
                     "'tokens.access_token_audience'", id="string for the audience list"),
        pytest.param(
            {"secret_key": ["not", "a", "string"]}, "'secret_key'", id="list for a string or null"),
        pytest.param(
            "tokens: [unclosed\n", "idp.yaml", id="malformed YAML"),
    ],
)
def test_bad_file_raises_config_error_naming_the_key(config_file: Any,
                                                     content: dict[str, Any] | str,
                                                     message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(environ=config_file(content))


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        pytest.param({"IDP_TOKENS__NOPE": "1"}, "'tokens.nope'", id="unknown variable"),
        pytest.param({"IDP_TOKENS__ACCESS_TOKEN_TTL": "soon"}, "'tokens.access_token_ttl'",
                     id="string for an int"),
        pytest.param({"IDP_TOKENS": "{access_token_ttl: 5}"}, "'tokens'",
                     id="mapping through one variable"),
        pytest.param({"IDP_AUDIT__LOG_JSON": "maybe"}, "'audit.log_json'",
                     id="string for a bool"),
        pytest.param(
            {"IDP_TOKENS__ACCESS_TOKEN_TTL": "null"}, "'tokens.access_token_ttl'",
            id="null for an int"),
    ],
)
def test_bad_variable_raises_config_error_naming_the_key(environ: dict[str, str],
                                                         message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(environ=environ)


@pytest.mark.parametrize(
    ("secret", "ok"),
    [
        pytest.param(None, False, id="no secret"),
        pytest.param("s" * 31, False, id="31 characters"),
        pytest.param(GOOD_SECRET, True, id="32 characters"),
    ],
)
def test_production_requires_a_secret_of_32_characters(secret: str | None, ok: bool) -> None:
    environ = dict(PRODUCTION, **({"IDP_SECRET_KEY": secret} if secret else {}))
    if ok:
        settings = load_settings(environ=environ)
        assert (settings.production, settings.secret_key) == (True, GOOD_SECRET)
    else:
        with pytest.raises(ConfigError, match="'secret_key'"):
            load_settings(environ=environ)


@pytest.mark.parametrize(
    ("issuer", "environment"),
    [
        pytest.param("https://idp.example.com/", "development", id="trailing slash"),
        pytest.param("http://localhost:5000/", "development", id="trailing slash, http"),
        pytest.param("idp.example.com", "development", id="no scheme"),
        pytest.param("https://idp.example.com?tenant=a", "development", id="query"),
        pytest.param("https://idp.example.com#top", "development", id="fragment"),
        pytest.param("http://idp.example.com", "production", id="http in production"),
    ],
)
def test_bad_issuer_raises_config_error(issuer: str, environment: str) -> None:
    environ = {"IDP_ISSUER": issuer, "IDP_ENVIRONMENT": environment,
               "IDP_SECRET_KEY": GOOD_SECRET}
    with pytest.raises(ConfigError, match="'issuer'"):
        load_settings(environ=environ)


@pytest.mark.parametrize("target", ["missing.yaml", "."], ids=["missing file", "a directory"])
def test_idp_config_must_name_a_file(tmp_path: Path, target: str) -> None:
    path = tmp_path / target
    with pytest.raises(ConfigError, match="IDP_CONFIG") as caught:
        load_settings(environ={"IDP_CONFIG": str(path)})
    assert str(path) in str(caught.value)


def test_test_only_variables_are_not_settings() -> None:
    environ = {"IDP_TEST_REDIS_URL": "redis://127.0.0.1:6379/15",
               "IDP_TEST_DATABASE_URL": "sqlite://"}
    assert load_settings(environ=environ).redis_url is None


def test_trusted_proxies_must_be_networks():
    with pytest.raises(ConfigError, match="trusted_proxies"):
        load_settings({"trusted_proxies": ["10.0.0.0/8", "not-a-network"]}, environ={})


@pytest.mark.parametrize("ttl", [0, 1, 3600])
def test_client_cache_ttl_accepts_zero_to_an_hour(ttl: int) -> None:
    settings = load_settings({"oidc": {"client_cache_ttl": ttl}}, environ={})
    assert settings.oidc.client_cache_ttl == ttl


@pytest.mark.parametrize("ttl", [-1, 3601, "30", 1.5])
def test_client_cache_ttl_out_of_range_or_not_an_integer_is_refused(ttl: Any) -> None:
    with pytest.raises(ConfigError, match=re.escape("oidc.client_cache_ttl")):
        load_settings({"oidc": {"client_cache_ttl": ttl}}, environ={})


@pytest.mark.parametrize(("keys", "expected"), [
    ({}, "ES256"),
    ({"algorithms": ["RS256"]}, "RS256"),
    ({"access_token_alg": "RS256"}, "RS256"),
])
def test_access_token_alg_defaults_to_es256_when_configured(keys: dict, expected: str) -> None:
    from idp.config import access_token_alg

    assert access_token_alg(load_settings({"keys": keys}, environ={}).keys) == expected


def test_access_token_alg_must_be_a_configured_algorithm() -> None:
    with pytest.raises(ConfigError, match=re.escape("keys.access_token_alg")):
        load_settings({"keys": {"algorithms": ["RS256"], "access_token_alg": "ES256"}},
                      environ={})
