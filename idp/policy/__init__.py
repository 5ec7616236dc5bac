"""The MFA policy (DESIGN §5): enforcement, adaptive rules, remembered devices.

Policy is data (``policy:`` in the configuration); :func:`decide` turns it and the request's
signals into the level the policy requires and a human-readable trace of why.
"""

from __future__ import annotations

from idp.policy.rules import Decision, PolicyError, Rule, Signals, decide, parse_rules

__all__ = ["Decision", "PolicyError", "Rule", "Signals", "decide", "parse_rules"]
