"""``idp policy explain`` prints the decision, the rules that caused it and the next step."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from idp.extensions import db
from idp.models import User
from tests.helpers.factors import enroll_totp
from tests.helpers.geoip import write_country_database


@pytest.fixture
def app_overrides(tmp_path_factory):
    geoip = write_country_database(tmp_path_factory.mktemp("geoip") / "countries.mmdb")
    return {"policy": {"rules": [{"when": {"new_device": True}, "require": "aal2"},
                                 {"when": {"client": ["payments"]}, "require": "phr"},
                                 {"when": {"country_changed": True}, "require": "aal2"}],
                       "geoip_database": str(geoip)}}


def _last_country(app, username, country):
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == username))
        user.last_country = country
        db.session.commit()


def _explain(app, *args):
    result = app.test_cli_runner().invoke(args=["policy", "explain", *args])
    return result.exit_code, result.output


def test_explain_names_the_matching_rule_and_the_challenge(app, flows):
    flows.user("alice")
    enroll_totp(app, "alice", steps_back=1)
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
    enroll_totp(app, "alice", steps_back=1)
    flows.client("payments")

    code, output = _explain(app, "--user", "alice", "--client", "payments")

    assert code == 0, output
    assert "required level: phr" in output
    assert "unmet_authentication_requirements" in output


def test_explain_honours_requested_acr_values(app, flows):
    flows.user("alice")
    enroll_totp(app, "alice", steps_back=1)
    flows.client("rp1")

    _, output = _explain(app, "--user", "alice", "--client", "rp1", "--acr-values",
                         "phr aal2")

    assert "required level: aal2" in output
    assert "first reachable: aal2" in output


def test_explain_unknown_user_is_a_clean_error(app):
    code, output = _explain(app, "--user", "nobody", "--client", "rp1")

    assert code == 1
    assert "no user 'nobody'" in output


@pytest.mark.parametrize(("args", "expected"), [
    (["--country", "br"], "rule 3 (country_changed=True) requires aal2"),
    (["--ip", "200.160.7.1"], "country of 200.160.7.1 in GeoLite2-Country: BR"),
])
def test_explain_country_change_from_a_flag_or_the_geoip_database(app, flows, args, expected):
    flows.user("alice")
    enroll_totp(app, "alice", steps_back=1)
    flows.client("rp1")
    _last_country(app, "alice", "GB")

    code, output = _explain(app, "--user", "alice", "--client", "rp1", *args)

    assert code == 0, output
    assert expected in output
    assert "rule 3 (country_changed=True) requires aal2" in output
    assert "required level: aal2" in output


def test_explain_with_an_address_in_the_same_country_matches_no_rule(app, flows):
    flows.user("alice")
    flows.client("rp1")
    _last_country(app, "alice", "GB")

    _, output = _explain(app, "--user", "alice", "--client", "rp1", "--ip", "81.2.69.160")

    assert "country of 81.2.69.160 in GeoLite2-Country: GB" in output
    assert "country_changed" not in output
    assert "required level: none beyond a sign-in" in output
