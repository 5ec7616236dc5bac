"""idp.policy.geoip: the country of an address in a MaxMind database file."""

from __future__ import annotations

from pathlib import Path

import pytest

from idp import create_app
from idp.config import ConfigError
from idp.policy.geoip import CountryDatabase, GeoIPError
from tests.helpers.geoip import write_country_database


@pytest.fixture
def countries(tmp_path: Path):
    database = CountryDatabase(str(write_country_database(tmp_path / "countries.mmdb")))
    yield database
    database.close()


@pytest.mark.parametrize(("address", "country"), [
    ("81.2.69.160", "GB"),
    ("200.160.7.1", "BR"),
    ("2a02:8100:1::1", "DE"),
    ("89.160.20.112", "SE"),   # registered_country when the record has no country
    ("8.8.8.8", None),         # not in the file
    ("2001:4860::8888", None),
    ("not an address", None),
    ("", None),
    (None, None),
])
def test_country_of_an_address(countries, address, country):
    assert countries.country(address) == country


def test_an_ipv6_address_in_an_ipv4_only_database_has_no_country(tmp_path):
    database = CountryDatabase(str(write_country_database(
        tmp_path / "v4.mmdb", {"81.2.69.0/24": {"country": {"iso_code": "GB"}}}, ip_version=4)))
    try:
        assert database.country("81.2.69.1") == "GB"
        assert database.country("2a02:8100:1::1") is None
    finally:
        database.close()


def test_records_without_a_valid_code_have_no_country(tmp_path):
    database = CountryDatabase(str(write_country_database(tmp_path / "odd.mmdb", {
        "81.2.69.0/24": {"country": {"iso_code": "gbr"}},
        "200.160.0.0/20": {"city": {"names": {"en": "São Paulo"}}},
    })))
    try:
        assert database.country("81.2.69.1") is None
        assert database.country("200.160.0.1") is None
    finally:
        database.close()


def test_the_database_type_is_read_from_the_metadata(countries):
    assert countries.database_type == "GeoLite2-Country"


@pytest.mark.parametrize(("make", "message"), [
    (lambda tmp: tmp / "missing.mmdb", "does not exist"),
    (lambda tmp: tmp, "is not a file"),
    (lambda tmp: _write(tmp / "text.mmdb", b"not a database\n"), "is not a MaxMind database"),
    (lambda tmp: _write(tmp / "empty.mmdb", b""), "is not a MaxMind database"),
])
def test_an_unusable_file_is_refused(tmp_path, make, message):
    with pytest.raises(GeoIPError, match=message):
        CountryDatabase(str(make(tmp_path)))


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def test_a_bad_database_path_stops_the_start(tmp_path):
    overrides = {"instance_path": str(tmp_path),
                 "database_url": f"sqlite:///{tmp_path / 'idp.db'}",
                 "policy": {"geoip_database": str(tmp_path / "GeoLite2-Country.mmdb")}}
    with pytest.raises(ConfigError, match=r"'policy.geoip_database': '.*GeoLite2-Country.mmdb' "
                                          r"does not exist"):
        create_app(overrides, environ={})
