"""Request parsing for the JSON APIs: content type, size, strict JSON, unknown fields, and
per-field checks whose errors name the field.

Plain code on purpose: each operation declares its body as a mapping of :class:`Field`, which
mirrors the request schema in ``openapi.yaml`` (``tests/api/test_openapi_contract.py`` checks
that the two name the same members). Rules:

- A body must be ``application/json`` (charset, if given, UTF-8): else 415 (RFC 9110 §15.5.16).
- At most :data:`MAX_BODY_BYTES`: else 413 (RFC 9110 §15.5.14).
- Strict JSON (RFC 8259): valid UTF-8, no duplicate member names, no ``NaN``/``Infinity``;
  the top level is an object. Else 400.
- Unknown members, wrong types, missing required members, bad values: 422 naming the field.
- Strings never hold NUL or unpaired surrogates (no database stores them faithfully).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from flask import request

from idp.api.errors import (
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)

MAX_BODY_BYTES = 16 * 1024
JSON_MIMETYPE = "application/json"
#: Path parameters: our ids are hex (users, factors, devices); client ids are what operators
#: registered, bounded like the column. Anything else cannot name a row: 404 before the query.
ID_PATTERN = re.compile(r"[0-9a-f]{32}")
CLIENT_ID_PATTERN = re.compile(r"[\x21-\x7e]{1,100}")


@dataclass(frozen=True)
class Field:
    """One body member. ``kind``: ``str``, ``int``, ``bool``, ``list`` (of ``items``) or
    ``dict`` (any JSON object, e.g. a WebAuthn ``PublicKeyCredential``)."""

    kind: type
    required: bool = False
    nullable: bool = False
    min_length: int = 0
    max_length: int | None = None
    pattern: re.Pattern[str] | None = None
    choices: tuple[Any, ...] | None = None
    minimum: int | None = None
    maximum: int | None = None
    items: Field | None = None
    max_items: int | None = None
    #: Extra check returning an error message, or None when the value is fine.
    check: Callable[[Any], str | None] | None = None


Schema = Mapping[str, Field]


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise InvalidRequest(f"The member {key!r} appears twice in the body.")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise InvalidRequest(f"{name} is not JSON (RFC 8259 §6).")


def read_json() -> Any | None:
    """The decoded body, or None when the request has none. Raises the 4xx errors above."""
    length = request.content_length
    if length is not None and length > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"The body must be at most {MAX_BODY_BYTES} bytes.")
    raw = request.get_data(cache=True)
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"The body must be at most {MAX_BODY_BYTES} bytes.")
    if not raw:
        return None
    if request.mimetype != JSON_MIMETYPE:
        raise UnsupportedMediaType("The body must be application/json.")
    charset = request.mimetype_params.get("charset")
    if charset is not None and charset.lower().replace("-", "") != "utf8":
        raise UnsupportedMediaType("The body must be UTF-8 encoded JSON.")
    try:
        text = raw.decode("utf-8", errors="strict")
        return json.loads(text, object_pairs_hook=_reject_duplicates,
                          parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise InvalidRequest("The body is not valid UTF-8.") from None
    except (ValueError, RecursionError):
        raise InvalidRequest("The body is not valid JSON.") from None


def parse_body(schema: Schema) -> dict[str, Any]:
    """The request body checked against ``schema``; an absent body counts as ``{}``."""
    data = read_json()
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InvalidRequest("The body must be a JSON object.")
    for name in data:
        if name not in schema:
            raise ValidationFailed(name, "unknown field")
    result: dict[str, Any] = {}
    for name, spec in schema.items():
        if name not in data:
            if spec.required:
                raise ValidationFailed(name, "is required")
            continue
        result[name] = check_value(name, spec, data[name])
    return result


def _check_text(name: str, value: str) -> None:
    if "\x00" in value:
        raise ValidationFailed(name, "must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationFailed(name, "must be valid Unicode text") from None


def check_value(name: str, spec: Field, value: Any) -> Any:
    """``value`` if it satisfies ``spec``; raises ValidationFailed naming ``name``."""
    if value is None:
        if spec.nullable:
            return None
        raise ValidationFailed(name, "must not be null")
    if spec.kind is bool:
        if not isinstance(value, bool):
            raise ValidationFailed(name, "must be true or false")
    elif spec.kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationFailed(name, "must be an integer")
        if spec.minimum is not None and value < spec.minimum:
            raise ValidationFailed(name, f"must be at least {spec.minimum}")
        if spec.maximum is not None and value > spec.maximum:
            raise ValidationFailed(name, f"must be at most {spec.maximum}")
    elif spec.kind is str:
        if not isinstance(value, str):
            raise ValidationFailed(name, "must be a string")
        _check_text(name, value)
        if len(value) < spec.min_length:
            raise ValidationFailed(name, f"must be at least {spec.min_length} characters")
        if spec.max_length is not None and len(value) > spec.max_length:
            raise ValidationFailed(name, f"must be at most {spec.max_length} characters")
        if spec.pattern is not None and not spec.pattern.fullmatch(value):
            raise ValidationFailed(name, "has the wrong format")
    elif spec.kind is dict:
        if not isinstance(value, dict):
            raise ValidationFailed(name, "must be an object")
    elif spec.kind is list:
        if not isinstance(value, list):
            raise ValidationFailed(name, "must be an array")
        if spec.max_items is not None and len(value) > spec.max_items:
            raise ValidationFailed(name, f"must have at most {spec.max_items} items")
        assert spec.items is not None
        value = [check_value(f"{name}[{i}]", spec.items, item) for i, item in enumerate(value)]
    if spec.choices is not None and value not in spec.choices:
        allowed = ", ".join(str(c) for c in spec.choices)
        raise ValidationFailed(name, f"must be one of {allowed}")
    if spec.check is not None:
        message = spec.check(value)
        if message:
            raise ValidationFailed(name, message)
    return value


def query_int(name: str, default: int | None = None, minimum: int | None = None,
              maximum: int | None = None) -> int | None:
    """An integer query parameter (decimal digits, optional minus sign); 422 otherwise."""
    raw = request.args.get(name)
    if raw is None:
        return default
    if not re.fullmatch(r"-?[0-9]{1,18}", raw):
        raise ValidationFailed(name, "must be an integer")
    return check_value(name, Field(int, minimum=minimum, maximum=maximum), int(raw))


def query_str(name: str, max_length: int = 200) -> str | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    return check_value(name, Field(str, min_length=1, max_length=max_length), raw)


def path_id(value: str, pattern: re.Pattern[str] = ID_PATTERN, what: str = "resource") -> str:
    """A path parameter that could name a row; anything else is 404 before any query."""
    if not pattern.fullmatch(value):
        raise NotFound(f"No such {what}.")
    return value


__all__ = ["Field", "Schema", "check_value", "parse_body", "path_id",
           "query_int", "query_str", "read_json"]
