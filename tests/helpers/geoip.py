"""Small MaxMind DB files for tests, written with mmdb-writer (the format MaxMind publishes)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mmdb_writer import MMDBWriter
from netaddr import IPSet

#: Networks → records shaped like GeoLite2-Country's. 127.0.0.0/8 is listed so tests whose
#: client is the loopback peer (no proxy) get a country too; real databases leave it out.
COUNTRIES: dict[str, dict[str, Any]] = {
    "81.2.69.0/24": {"country": {"iso_code": "GB"}},
    "200.160.0.0/20": {"country": {"iso_code": "BR"}},
    "2a02:8100::/27": {"country": {"iso_code": "DE"}},
    "89.160.20.0/24": {"registered_country": {"iso_code": "SE"}},  # no `country` record
    "127.0.0.0/8": {"country": {"iso_code": "NL"}},
}


def write_country_database(path: Path, networks: Mapping[str, dict[str, Any]] = COUNTRIES,
                           ip_version: int = 6) -> Path:
    writer = MMDBWriter(ip_version=ip_version, ipv4_compatible=ip_version == 6,
                        database_type="GeoLite2-Country", languages=["en"],
                        description="stepup-idp test countries")
    for network, record in networks.items():
        writer.insert_network(IPSet([network]), record)
    writer.to_db_file(str(path))
    return path
