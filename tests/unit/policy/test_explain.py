"""``idp policy explain`` prints the decision, the rules that caused it and the next step."""

from __future__ import annotations

import time

import pytest

from tests.helpers.factors import enroll_totp


@pytest.fixture
def app_overrides():
    return {"policy": {"rules": [{"when": {"new_device": True}, "require": "aal2"},
                                 {"when": {"client": ["payments"]}, "require": "phr"}]}}


def _explain(app, *args):
    result = app.test_cli_runner().invoke(args=["policy", "explain", *args])
    return result.exit_code, result.output


def test_explain_names_the_matching_rule_and_the_challenge(app, flows):
    flows.user("alice")
    enroll_totp(app, "alice", at=time.time() - 30)
    flows.client("rp1")

    code, output = _explain(app, "--user", "alice", "--client", "rp1", "--new-device")

    assert code == 0, output
    assert "required level: aal2" in output
    assert "rule 1 (new_device=True) requires aal2" in output
    assert "a aal2 challenge with one of: totp" in output


def test_explain_without_matching_rules(app, flows):
    flows.user("alice")
    flows.client("rp1")

    code, output = _explain(app, "--user", "alice", "--client", "rp1")

    assert code == 0, output
    assert "required level: none beyond a sign-in" in output
    assert "next step: password sign-in, then the code is issued" in output


def test_explain_an_unreachable_level_says_enrollment_or_unmet(app, flows):
    flows.user("alice")
    enroll_totp(app, "alice", at=time.time() - 30)
    flows.client("payments")

    code, output = _explain(app, "--user", "alice", "--client", "payments")

    assert code == 0, output
    assert "required level: phr" in output
    assert "unmet_authentication_requirements" in output


def test_explain_honours_requested_acr_values(app, flows):
    flows.user("alice")
    enroll_totp(app, "alice", at=time.time() - 30)
    flows.client("rp1")

    _, output = _explain(app, "--user", "alice", "--client", "rp1", "--acr-values",
                         "phr aal2")

    assert "required level: aal2" in output
    assert "first reachable: aal2" in output


def test_explain_unknown_user_is_a_clean_error(app):
    code, output = _explain(app, "--user", "nobody", "--client", "rp1")

    assert code == 1
    assert "no user 'nobody'" in output
