"""Adaptive rule `country_changed` (DESIGN §5): a sign-in from another country than the
previous one needs the level. The country comes from a trusted proxy's header
(`policy.country_header`), else from the MaxMind database `policy.geoip_database`."""

from __future__ import annotations

import pytest

from tests.helpers.factors import enroll_totp
from tests.helpers.geoip import write_country_database
from tests.helpers.rp import callback_params, page_name
from tests.helpers.stepup import first_page_after_login

RULE = {"when": {"country_changed": True}, "require": "aal2"}


@pytest.fixture
def app_overrides(request, tmp_path_factory):
    """``param``: which sources are configured ("header", "geoip") and whether 127.0.0.1 is a
    trusted proxy."""
    sources, proxied = request.param
    policy = {"rules": [RULE]}
    if "header" in sources:
        policy["country_header"] = "X-Country"
    if "geoip" in sources:
        policy["geoip_database"] = str(write_country_database(
            tmp_path_factory.mktemp("geoip") / "GeoLite2-Country.mmdb"))
    return {"policy": policy, "trusted_proxies": ["127.0.0.1/32"] if proxied else []}


def _browser(flows, country=None, address=None):
    browser = flows.browser()
    if country:
        browser.session.headers["X-Country"] = country
    if address:
        browser.session.headers["X-Forwarded-For"] = address
    return browser


def _signed_in_once(flows, app, **where):
    flows.user("alice")
    enroll_totp(app, "alice", steps_back=1)
    rp = flows.client("rp1")
    callback_params(first_page_after_login(_browser(flows, **where), rp))  # first: no change
    return rp


def _last_country(app):
    from sqlalchemy import select

    from idp.extensions import db
    from idp.models import User

    with app.app_context():
        return db.session.scalar(select(User.last_country).where(User.username == "alice"))


@pytest.mark.parametrize("app_overrides", [(("header",), True)], indirect=True)
def test_country_change_from_a_trusted_proxy_header(flows, app):
    rp = _signed_in_once(flows, app, country="DE")

    page = first_page_after_login(_browser(flows, country="BR"), rp)

    assert page_name(page.text) == "mfa-totp"


@pytest.mark.parametrize("app_overrides", [(("header",), False)], indirect=True)
def test_the_header_from_an_untrusted_peer_is_ignored(flows, app):
    rp = _signed_in_once(flows, app, country="DE")

    callback_params(first_page_after_login(_browser(flows, country="BR"), rp))
    assert _last_country(app) is None


@pytest.mark.parametrize("app_overrides", [(("geoip",), True)], indirect=True)
def test_country_change_from_the_geoip_database(flows, app):
    """Behind the trusted proxy the client is the X-Forwarded-For address: GB, then BR."""
    rp = _signed_in_once(flows, app, address="81.2.69.160")
    assert _last_country(app) == "GB"

    same = first_page_after_login(_browser(flows, address="81.2.69.20"), rp)
    callback_params(same)  # another address, same country: no step-up
    abroad = first_page_after_login(_browser(flows, address="200.160.7.1"), rp)

    assert page_name(abroad.text) == "mfa-totp"
    assert _last_country(app) == "BR"


@pytest.mark.parametrize("app_overrides", [(("geoip",), False)], indirect=True)
def test_without_a_proxy_the_peer_address_is_looked_up(flows, app):
    """The test database maps 127.0.0.0/8 to NL; a forged X-Forwarded-For is not honoured."""
    rp = _signed_in_once(flows, app, address="200.160.7.1")

    assert _last_country(app) == "NL"
    callback_params(first_page_after_login(_browser(flows, address="81.2.69.160"), rp))


@pytest.mark.parametrize("app_overrides", [(("header", "geoip"), True)], indirect=True)
def test_the_header_takes_precedence_over_the_database(flows, app):
    rp = _signed_in_once(flows, app, country="BR", address="81.2.69.160")
    assert _last_country(app) == "BR"  # the header, not the database's GB

    # No header on this request: the database answers (GB) and that is a change from BR.
    page = first_page_after_login(_browser(flows, address="81.2.69.160"), rp)

    assert page_name(page.text) == "mfa-totp"


@pytest.mark.parametrize("app_overrides", [(("geoip",), True)], indirect=True)
def test_an_address_the_database_does_not_know_is_no_change(flows, app):
    rp = _signed_in_once(flows, app, address="81.2.69.160")

    callback_params(first_page_after_login(_browser(flows, address="8.8.8.8"), rp))
    assert _last_country(app) == "GB"  # unknown keeps the last known country
