"""Settings: built-in defaults < the IDP_CONFIG file < IDP_* environment variables.

The packaged ``idp/config/default.yaml`` *is* the list of known settings: any key in an
overriding file or variable that it does not name is a configuration error, reported once at
start with the dotted path of the bad key.
"""

from __future__ import annotations

import copy
import functools
import ipaddress
import os
import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

ENV_PREFIX = "IDP_"
#: Mappings whose keys are free-form (not validated against the defaults).
OPEN_MAPPINGS: frozenset[str] = frozenset()


class EnvValue(str):
    """Text from an environment variable: parsed according to the setting's type."""


class ConfigError(ValueError):
    """A setting is unknown or has the wrong type; the message names the setting."""


@functools.cache
def _packaged_defaults() -> dict[str, Any]:
    text = resources.files("idp").joinpath("config/default.yaml").read_text("utf-8")
    return yaml.safe_load(text)


def load_defaults() -> dict[str, Any]:
    """A fresh copy of the packaged defaults (parsed once per process)."""
    return copy.deepcopy(_packaged_defaults())


def _merge(base: dict[str, Any], overlay: Mapping[str, Any], path: str = "") -> None:
    for key, value in overlay.items():
        dotted = f"{path}{key}"
        if key not in base and path.rstrip(".") not in OPEN_MAPPINGS:
            raise ConfigError(f"unknown setting '{dotted}'")
        current = base.get(key)
        if isinstance(current, dict) and path.rstrip(".") not in OPEN_MAPPINGS:
            if not isinstance(value, Mapping):
                raise ConfigError(f"setting '{dotted}' must be a mapping")
            _merge(current, value, f"{dotted}.")
        else:
            base[key] = _coerce(dotted, current, value)


def _coerce(dotted: str, default: Any, value: Any) -> Any:
    """Check ``value`` has the type of the default (``None`` defaults accept text or None).

    Environment text is parsed only for non-text settings, so ``#`` in a secret or colour is
    kept verbatim.
    """
    if default is None or isinstance(default, str):
        if value is None and default is None:
            return None
        if isinstance(value, EnvValue):
            return str(value)
        if not isinstance(value, str):
            raise ConfigError(f"setting '{dotted}' must be text, got {value!r}")
        return value
    if isinstance(value, EnvValue):
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ConfigError(f"setting '{dotted}' has an unreadable value {value!r}") from None
    if value is None:
        raise ConfigError(f"setting '{dotted}' must not be null")
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"setting '{dotted}' must be true or false, got {value!r}")
        return value
    if isinstance(default, int) and not isinstance(default, bool):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"setting '{dotted}' must be an integer, got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"setting '{dotted}' must be a number, got {value!r}")
        return float(value)
    if not isinstance(value, type(default)):
        raise ConfigError(
            f"setting '{dotted}' must be a {type(default).__name__}, got {value!r}"
        )
    return value


def _env_overlay(environ: Mapping[str, str]) -> dict[str, Any]:
    overlay: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name in {"IDP_CONFIG", "IDP_TEST_DATABASE_URL",
                                                        "IDP_TEST_REDIS_URL"}:
            continue
        parts = name[len(ENV_PREFIX):].lower().split("__")
        node = overlay
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = EnvValue(raw)
    return overlay


class Settings:
    """Validated, read-only view of the configuration tree.

    Access by attribute (``settings.tokens.access_token_ttl``) or ``settings.get("a.b")``.
    """

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getattr__(self, name: str) -> Any:
        try:
            value = self._data[name]
        except KeyError as exc:
            raise AttributeError(name) from exc
        return Settings(value) if isinstance(value, dict) else value

    def get(self, dotted: str, default: Any = None) -> Any:
        node: Any = self._data
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    def as_dict(self) -> dict[str, Any]:
        return copy.deepcopy(self._data)

    @property
    def production(self) -> bool:
        return self._data.get("environment") == "production"

    @property
    def secure_cookies(self) -> bool:
        return str(self._data["issuer"]).startswith("https://")


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build and validate the settings once; raises :class:`ConfigError` naming the bad key."""
    environ = os.environ if environ is None else environ
    data = load_defaults()
    config_file = environ.get("IDP_CONFIG")
    if config_file:
        path = Path(config_file)
        if not path.is_file():
            raise ConfigError(f"IDP_CONFIG names '{config_file}', which is not a file")
        try:
            loaded = yaml.safe_load(path.read_text("utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"'{config_file}' is not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"'{config_file}' must hold a mapping of settings")
        _merge(data, loaded)
    _merge(data, _env_overlay(environ))
    if overrides:
        _merge(data, overrides)
    _validate(data)
    return Settings(data)


#: Upper bound of ``oidc.client_cache_ttl``: how long another process may keep using a client
#: disabled or re-keyed elsewhere.
MAX_CLIENT_CACHE_TTL = 3600


def access_token_alg(keys: Any) -> str:
    """The access tokens' signing algorithm: ``keys.access_token_alg``, else ES256 when
    configured, else RS256 (RFC 9068 §4 requires only that RS256 be supported)."""
    chosen = keys.get("access_token_alg")
    if chosen:
        return str(chosen)
    return "ES256" if "ES256" in keys.get("algorithms") else "RS256"


def _validate(data: dict[str, Any]) -> None:
    issuer = str(data["issuer"])
    if not issuer.startswith(("https://", "http://")) or issuer.endswith("/"):
        raise ConfigError("setting 'issuer' must be an http(s) URL without a trailing slash")
    if "?" in issuer or "#" in issuer:
        raise ConfigError("setting 'issuer' must not contain a query or fragment")
    if data["environment"] not in ("development", "production"):
        raise ConfigError("setting 'environment' must be development or production")
    secret = data.get("secret_key")
    if data["environment"] == "production":
        if not secret or len(str(secret)) < 32:
            raise ConfigError("setting 'secret_key' must have at least 32 characters in production")
        if not issuer.startswith("https://"):
            raise ConfigError("setting 'issuer' must be https in production")
    colour = str(data["branding"]["primary_color"])
    if not re.fullmatch(r"#[0-9a-fA-F]{3}(?:[0-9a-fA-F]{3})?", colour):
        raise ConfigError("setting 'branding.primary_color' must be a #rgb or #rrggbb colour")
    for alg in data["keys"]["algorithms"]:
        if alg not in ("RS256", "ES256"):
            raise ConfigError(f"setting 'keys.algorithms' has unsupported algorithm {alg!r}")
    if "RS256" not in data["keys"]["algorithms"]:
        raise ConfigError("setting 'keys.algorithms' must include RS256 (OIDC Core §15.1)")
    access_alg = data["keys"]["access_token_alg"]
    if access_alg is not None and access_alg not in data["keys"]["algorithms"]:
        raise ConfigError("setting 'keys.access_token_alg' must be one of keys.algorithms, "
                          f"got {access_alg!r}")
    for dotted in ("tokens.authorization_code_ttl", "tokens.access_token_ttl",
                   "tokens.id_token_ttl", "tokens.refresh_token_ttl",
                   "session.absolute_timeout", "session.idle_timeout",
                   "session.interaction_ttl", "server.workers", "server.max_request_bytes"):
        section, key = dotted.split(".")
        if data[section][key] <= 0:
            raise ConfigError(f"setting '{dotted}' must be positive")
    cookie = str(data["session"]["cookie_name"])
    if cookie.startswith(("__Host-", "__Secure-")) and not issuer.startswith("https://"):
        raise ConfigError("setting 'session.cookie_name' may carry a __Host- or __Secure- "
                          "prefix only with an https issuer (browsers drop such cookies "
                          "without Secure); on https, __Host- is added by itself")
    audience = data["tokens"]["access_token_audience"]
    if any(not isinstance(aud, str) or not aud.strip() for aud in audience):
        raise ConfigError("setting 'tokens.access_token_audience' must be a list of "
                          "non-empty strings (resource server identifiers)")
    ttl = data["oidc"]["client_cache_ttl"]
    if not 0 <= ttl <= MAX_CLIENT_CACHE_TTL:
        raise ConfigError(f"setting 'oidc.client_cache_ttl' must be between 0 (off) and "
                          f"{MAX_CLIENT_CACHE_TTL} seconds")
    for network in data["trusted_proxies"]:
        try:
            ipaddress.ip_network(str(network), strict=False)
        except ValueError:
            raise ConfigError(f"setting 'trusted_proxies' has {network!r}, which is not an IP "
                              "network (CIDR)") from None
    _validate_codes_and_delivery(data)


#: Transports each delivery channel can use (DESIGN §6: console outbox, SMTP, HTTP SMS gateway).
DELIVERY_TRANSPORTS = {"sms": ("console", "http"), "email": ("console", "smtp")}


def _validate_codes_and_delivery(data: dict[str, Any]) -> None:
    """One-time code limits and delivery transports: a typo fails at start, not at the first
    code a user asks for."""
    for key in ("code_ttl", "code_max_sends_per_hour"):
        if data["mfa"][key] <= 0:
            raise ConfigError(f"setting 'mfa.{key}' must be positive")
    if data["mfa"]["code_resend_cooldown"] < 0:
        raise ConfigError("setting 'mfa.code_resend_cooldown' must not be negative")
    delivery = data["delivery"]
    for channel, transports in DELIVERY_TRANSPORTS.items():
        if delivery[channel] not in transports:
            raise ConfigError(f"setting 'delivery.{channel}' must be one of "
                              f"{', '.join(transports)}, got {delivery[channel]!r}")
    gateway_url = delivery["sms_gateway"]["url"]
    if delivery["sms"] == "http":
        if not gateway_url or not str(gateway_url).startswith(("https://", "http://")):
            raise ConfigError("setting 'delivery.sms_gateway.url' must be an http(s) URL when "
                              "delivery.sms is http")
        if data["environment"] == "production" and not str(gateway_url).startswith("https://"):
            raise ConfigError("setting 'delivery.sms_gateway.url' must be https in production")
    for section in ("smtp", "sms_gateway"):
        if delivery[section]["timeout"] <= 0:
            raise ConfigError(f"setting 'delivery.{section}.timeout' must be positive")
