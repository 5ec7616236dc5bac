"""stepup-idp-hotp: an HOTP (RFC 4226) hardware-token factor, installed as a plugin.

The IdP finds it through the ``idp.factors`` entry point ``hotp = "stepup_hotp:HotpFactor"``
(see ``pyproject.toml``); an administrator turns it on by adding ``hotp`` to
``policy.allowed_factors``.
"""

from __future__ import annotations

from stepup_hotp.factor import WINDOW, HotpFactor
from stepup_hotp.hotp import DIGITS, InvalidSeed, dynamic_truncate, hotp, parse_seed

__all__ = ["DIGITS", "WINDOW", "HotpFactor", "InvalidSeed", "dynamic_truncate", "hotp",
           "parse_seed"]
__version__ = "0.1.0"
