"""Policy rules and enforcement (DESIGN §5): parsing is strict, evaluation is a table."""

from __future__ import annotations

from importlib import resources

import pytest
import yaml

from idp.assurance import Ladder
from idp.policy.rules import PolicyError, Signals, decide, parse_rules

LADDER = Ladder.from_config(
    yaml.safe_load(resources.files("idp").joinpath("config/default.yaml").read_text())
    ["acr"]["levels"])
RULES = parse_rules([
    {"when": {"new_device": True}, "require": "aal2"},
    {"when": {"country_changed": True}, "require": "aal2"},
    {"when": {"client": ["payments"]}, "require": "phr"},
    {"when": {"recent_failures_at_least": 5}, "require": "aal2"},
    {"when": {"ip_in": ["10.0.0.0/8", "2001:db8::/32"]}, "require": "mfa"},
], LADDER)
OPTIONAL = {"enforcement": "optional", "applies_to": "all", "grace_logins": 0}


@pytest.mark.parametrize(("signals", "required", "matched"), [
    (Signals(), None, ()),
    (Signals(new_device=True), "aal2", (0,)),
    (Signals(country="DE", previous_country="FR"), "aal2", (1,)),
    (Signals(country="DE", previous_country="DE"), None, ()),
    (Signals(country="DE", previous_country=None), None, ()),
    (Signals(client_id="payments"), "phr", (2,)),
    (Signals(client_id="payments", new_device=True), "phr", (0, 2)),
    (Signals(recent_failures=4), None, ()),
    (Signals(recent_failures=5), "aal2", (3,)),
    (Signals(ip="10.1.2.3"), "aal2", (4,)),
    (Signals(ip="2001:db8::1"), "aal2", (4,)),
    (Signals(ip="192.0.2.1"), None, ()),
    (Signals(ip="not an ip"), None, ()),
])
def test_every_matching_rule_raises_the_level(signals, required, matched):
    decision = decide(OPTIONAL, RULES, LADDER, signals)

    assert decision.required == required
    assert decision.matched_rules == matched
    assert len(decision.trace) == 1 + len(matched)


@pytest.mark.parametrize(("policy", "signals", "since", "required"), [
    ({"enforcement": "off"}, Signals(), None, None),
    ({"enforcement": "optional"}, Signals(), None, None),
    ({"enforcement": "required", "applies_to": "all"}, Signals(), None, "aal2"),
    ({"enforcement": "required", "applies_to": "new_users"},
     Signals(user_created_at=100), 200, None),
    ({"enforcement": "required", "applies_to": "new_users"},
     Signals(user_created_at=300), 200, "aal2"),
    ({"enforcement": "required", "grace_logins": 3}, Signals(logins_without_mfa=2), None, None),
    ({"enforcement": "required", "grace_logins": 3}, Signals(logins_without_mfa=3), None, None),
    ({"enforcement": "required", "grace_logins": 3}, Signals(logins_without_mfa=4), None,
     "aal2"),
    ({"enforcement": "required", "grace_logins": 3},
     Signals(logins_without_mfa=0, user_has_factors=True), None, "aal2"),
])
def test_enforcement(policy, signals, since, required):
    assert decide(policy, [], LADDER, signals, since).required == required


def test_enforcement_off_switches_the_rules_off_too():
    """``off``: the policy as a whole is off, so a matching rule raises nothing either."""
    matching = Signals(new_device=True, client_id="payments", recent_failures=9)

    off = decide({"enforcement": "off"}, RULES, LADDER, matching)
    optional = decide(OPTIONAL, RULES, LADDER, matching)

    assert off.required is None and off.matched_rules == ()
    assert "adaptive rules not evaluated" in off.trace[0]
    assert optional.required is not None and optional.matched_rules


@pytest.mark.parametrize(("raw", "message"), [
    ([{"when": {"new_devices": True}, "require": "aal2"}], "unknown condition 'new_devices'"),
    ([{"when": {"new_device": True}, "require": "gold"}], "unknown level 'gold'"),
    ([{"when": {}, "require": "aal2"}], "non-empty mapping"),
    ([{"when": {"new_device": True}, "require": "aal2", "also": 1}], "only 'when'"),
    ([{"when": {"ip_in": ["not-a-network"]}, "require": "aal2"}], "ip_in"),
    ([{"when": {"recent_failures_at_least": "many"}, "require": "aal2"}],
     "recent_failures_at_least"),
])
def test_bad_rules_are_configuration_errors(raw, message):
    with pytest.raises(PolicyError, match=message):
        parse_rules(raw, LADDER)


def test_alias_levels_are_canonicalised():
    (rule,) = parse_rules([{"when": {"new_device": True}, "require": "mfa"}], LADDER)
    assert rule.require == "aal2"


def test_unknown_rule_key_stops_the_app(tmp_path):
    from idp import create_app
    from idp.config import ConfigError

    with pytest.raises(ConfigError, match="unknown condition"):
        create_app({"secret_key": "x" * 40, "instance_path": str(tmp_path),
                    "policy": {"rules": [{"when": {"moon_phase": "full"}, "require": "aal2"}]}},
                   environ={})
