"""Country of a client address from a MaxMind database file (``policy.geoip_database``).

The ``country_changed`` rule needs the country of each sign-in. Behind a CDN that sets a
country header, ``policy.country_header`` gives it; otherwise an operator can point
``policy.geoip_database`` at a MaxMind DB file (GeoLite2-Country / GeoIP2-Country, or a City
database, which carries the same ``country`` record; MaxMind DB File Format Specification
2.0). The file is opened once when the application starts (memory-mapped, by the C extension
when it is installed) and shared by every request; an unreadable or malformed file stops the
start instead of silently disabling the rule.

The address looked up is ``request.remote_addr``, which :mod:`idp.proxy` has already set to the
real client behind the ``trusted_proxies``. A record's ``country.iso_code`` is used, else its
``registered_country.iso_code`` (MaxMind leaves ``country`` out for some networks, e.g.
anycast, and documents ``registered_country`` as the fallback); an address the file does not
list has no country.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
from typing import Any

import maxminddb
from maxminddb.errors import InvalidDatabaseError

log = logging.getLogger(__name__)

ISO_3166_ALPHA2 = re.compile(r"^[A-Z]{2}$")


class GeoIPError(ValueError):
    """The configured database cannot be used (the message names the file and why)."""


class CountryDatabase:
    """A read-only MaxMind database answering "which country is this address in?"."""

    def __init__(self, path: str) -> None:
        if not os.path.exists(path):
            raise GeoIPError(f"'{path}' does not exist")
        if not os.path.isfile(path):
            raise GeoIPError(f"'{path}' is not a file (a MaxMind database file is expected)")
        try:
            self._reader = maxminddb.open_database(path, maxminddb.MODE_AUTO)
        except PermissionError:
            raise GeoIPError(f"'{path}' is not readable by this process") from None
        except (InvalidDatabaseError, ValueError, OSError) as exc:
            raise GeoIPError(f"'{path}' is not a MaxMind database: {exc}") from None
        self.path = path
        self.database_type = str(self._reader.metadata().database_type)

    def country(self, address: str | None) -> str | None:
        """The ISO 3166-1 alpha-2 code of ``address``, or None when unknown."""
        if not address:
            return None
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return None
        try:
            record = self._reader.get(ip)
        except (InvalidDatabaseError, ValueError) as exc:
            # An IPv6 address in an IPv4-only database raises ValueError; a corrupt section
            # raises InvalidDatabaseError. Either way: no country, and the sign-in goes on.
            log.warning("geoip lookup of %s in %s failed: %s", address, self.path, exc)
            return None
        return _iso_code(record)

    def close(self) -> None:
        self._reader.close()


def _iso_code(record: Any) -> str | None:
    if not isinstance(record, dict):
        return None
    for key in ("country", "registered_country"):
        section = record.get(key)
        code = section.get("iso_code") if isinstance(section, dict) else None
        if isinstance(code, str) and ISO_3166_ALPHA2.match(code):
            return code
    return None
