"""Cookie names: the ``__Host-`` prefix on an https issuer.

A browser stores a ``__Host-`` cookie only if it is ``Secure``, has ``Path=/`` and no
``Domain`` (RFC 6265bis §4.1.3.2), so a sibling subdomain or a plain-http page of the same host
can neither set nor overwrite it (cookie tossing, session fixation). The IdP's host-only cookies
(session, interaction) all have that shape when the issuer is https; on a plain-http
development issuer they keep their plain names, since browsers drop ``__Host-`` cookies that
are not ``Secure``.
"""

from __future__ import annotations

HOST_PREFIX = "__Host-"
#: Prefixes whose cookies browsers accept only with ``Secure`` (RFC 6265bis §4.1.3).
SECURE_ONLY_PREFIXES = ("__Host-", "__Secure-")


def host_cookie_name(base: str, secure: bool) -> str:
    """``base`` with the ``__Host-`` prefix when cookies are ``Secure`` (an https issuer);
    a name that already carries a prefix is kept as it is."""
    if not secure or base.startswith(SECURE_ONLY_PREFIXES):
        return base
    return HOST_PREFIX + base
