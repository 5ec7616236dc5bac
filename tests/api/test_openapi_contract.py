"""The implementation is held to ``/api/v1/openapi.json``.

- ``schemathesis`` generates requests for every operation from the document (valid and
  invalid ones), runs them against the Flask app through WSGI and checks every response: no
  5xx, only documented statuses, content types and headers, bodies that match their schemas,
  and invalid requests rejected with a 4xx. Bounded (``MAX_EXAMPLES`` per operation) and
  derandomized, so CI is deterministic; no example database is written.
- The document's links (create a user → get / reset / delete it, create a client → get /
  update / rotate / delete it, enroll a factor → challenge / unenroll it) are for clients and
  tools; schemathesis' state machine is not run here: the server's state persists between
  Hypothesis examples, which makes its rule choice inconsistent on replay
  (``FlakyStrategyDefinition`` on PostgreSQL), and CI must be deterministic. The multi-step
  flows are covered by the functional tests in this folder.
- The request bodies the code validates (``idp.api.validation.Field`` schemas) name exactly
  the members the document declares.

Tokens for both security schemes come from an auth hook: the admin API gets a
client-credentials token with ``idp:admin``, the self-service API a user's token with ``mfa``
(aal2, with a verified TOTP factor, so the level-gated operations are reachable too).
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from idp.api import mfa
from idp.api.admin import clients as admin_clients
from idp.api.admin import users as admin_users
from tests.helpers.factors import enroll_totp

MAX_EXAMPLES = 20
TOKENS = "tests.api_tokens"
#: Every check but positive_data_acceptance: a request can be valid per the document and
#: still be refused on its merits (a wrong code is 422 verification_failed, an unknown id
#: 404): the document declares those statuses, and the conformance checks hold them to it.
CHECKS = [
    schemathesis.checks.not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    ignored_auth,
]
#: An invalid request may be refused for its size before anything else (413).
CONFIG = SchemathesisConfig.from_dict({"checks": {"negative_data_rejection": {
    "expected-statuses": ["400", "401", "403", "404", "405", "409", "413", "415", "422",
                          "429"]}}})
FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES, derandomize=True, deadline=None, database=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate],
)


@pytest.fixture
def api_schema(app: Any, api: Any) -> Any:
    api.user()
    enroll_totp(app, "alice", steps_back=1)
    app.extensions[TOKENS] = {
        "admin": api.admin_token(),
        "user": api.user_token(methods=("password", "totp"))["access_token"],
    }
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app, config=CONFIG)

    @schema.auth(refresh_interval=None)
    class Tokens:
        """The admin token for /admin, the user's token for /me."""

        def get(self, case: Any, context: Any) -> str:
            kind = "admin" if context.operation.path.startswith("/admin") else "user"
            return context.app.extensions[TOKENS][kind]

        def set(self, case: Any, data: str, context: Any) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    return schema


def _operations(schema: Any) -> list[Any]:
    return [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                         ids=["valid requests", "invalid requests"])
def test_every_operation_conforms_to_the_document(api_schema: Any, mode: Any) -> None:
    """Stateless fuzzing, one bounded Hypothesis run per operation. (Driven through
    ``as_strategy`` rather than schemathesis' pytest decorator, whose lazy fixture loader
    does not run under pytest 9.2.)"""
    for operation in _operations(api_schema):
        if mode == GenerationMode.NEGATIVE and not _can_be_invalid(operation):
            continue

        @FUZZ_SETTINGS
        @given(case=operation.as_strategy(mode, auth_storage=api_schema.auth))
        def call(case: Any) -> None:
            case.call_and_validate(checks=CHECKS)

        call()


def _can_be_invalid(operation: Any) -> bool:
    """Only parameters and bodies can be made invalid (GET /me/aal has neither)."""
    definition = operation.definition.raw
    return bool(definition.get("parameters") or definition.get("requestBody")
                or operation.path_parameters)


def _body_members(document: dict[str, Any], operation_id: str) -> set[str]:
    for item in document["paths"].values():
        for operation in item.values():
            if isinstance(operation, dict) and operation.get("operationId") == operation_id:
                ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
                schema = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
                return set(schema["properties"])
    raise AssertionError(operation_id)


@pytest.mark.parametrize(("operation_id", "fields"), [
    ("enrollFactor", mfa.ENROLL),
    ("verifyFactor", mfa.VERIFY),
    ("challengeAndVerifyFactor", mfa.CHALLENGE_AND_VERIFY),
    ("createUser", admin_users.CREATE_USER),
    ("createClient", admin_clients.CREATE_CLIENT),
    ("updateClient", admin_clients.UPDATE_CLIENT),
])
def test_validated_bodies_match_the_document(operation_id: str, fields: Any) -> None:
    from idp.api import _packaged_spec

    assert _body_members(_packaged_spec(), operation_id) == set(fields)


def test_the_document_is_served_with_this_servers_url(api: Any, app: Any) -> None:
    document = api.http.get("/api/v1/openapi.json").get_json()

    assert document["openapi"].startswith("3.1")
    assert document["servers"] == [{"url": app.extensions["idp.settings"].issuer + "/api/v1"}]
    operations = {op["operationId"] for item in document["paths"].values()
                  for op in item.values() if isinstance(op, dict) and "operationId" in op}
    assert len(operations) == 27
