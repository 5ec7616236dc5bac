"""The per-process client cache (idp/oidc/client_cache.py): TTL against an injected clock,
the generation guard, the size bound, and a record that mirrors every column."""

from __future__ import annotations

from dataclasses import fields, replace

import pytest

from idp.models import Client
from idp.oidc.client_cache import ClientCache, ClientRecord


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def record(client_id: str = "rp1", **changes: object) -> ClientRecord:
    base = ClientRecord(
        client_id=client_id, secret_hash="h", name="RP", redirect_uris=("https://rp/cb",),
        post_logout_redirect_uris=(), grant_types=("authorization_code",), scope="openid",
        token_endpoint_auth_method="client_secret_basic", first_party=True, minimum_acr=None,
        default_acr_values=(), default_max_age=None, require_acr_values=False,
        id_token_signed_response_alg="RS256", logo_uri=None, disabled=False, created_at=1)
    return replace(base, **changes)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_an_entry_lives_exactly_ttl_seconds(clock):
    cache = ClientCache(30, clock=clock)
    cache.put(record(), cache.generation())

    clock.now += 29.9
    assert cache.get("rp1") == record()
    clock.now += 0.1
    assert cache.get("rp1") is None


def test_ttl_zero_disables_the_cache(clock):
    cache = ClientCache(0, clock=clock)
    cache.put(record(), cache.generation())

    assert not cache.enabled
    assert cache.get("rp1") is None


def test_a_load_overtaken_by_an_invalidation_is_not_stored(clock):
    cache = ClientCache(30, clock=clock)
    generation = cache.generation()      # a load starts, reads the old row...
    cache.invalidate(["rp1"])            # ...another thread commits a change to rp1
    cache.put(record(), generation)      # ...the old row must not be stored

    assert cache.get("rp1") is None
    cache.put(record(), cache.generation())
    assert cache.get("rp1") == record()


def test_invalidation_of_one_client_or_all(clock):
    cache = ClientCache(30, clock=clock)
    for client_id in ("a", "b", "c"):
        cache.put(record(client_id), cache.generation())

    cache.invalidate(["a"])
    assert [cache.get(c) is not None for c in "abc"] == [False, True, True]
    cache.invalidate()
    assert [cache.get(c) for c in "abc"] == [None, None, None]


def test_the_cache_is_bounded(clock):
    cache = ClientCache(30, clock=clock, max_entries=2)
    for client_id in ("a", "b", "c"):
        cache.put(record(client_id), cache.generation())

    assert [cache.get(c) is not None for c in "abc"] == [False, True, True]


def test_a_record_has_every_column_of_the_clients_table():
    """A new column must be added to the record, or the cached client would lack it."""
    assert {f.name for f in fields(ClientRecord)} == set(Client.__table__.columns.keys())


def test_a_record_is_immutable_and_copies_lists_to_tuples():
    model = Client(client_id="rp1", name="RP", redirect_uris=["https://rp/cb"],
                   post_logout_redirect_uris=[], grant_types=["authorization_code"],
                   scope="openid", token_endpoint_auth_method="none", default_acr_values=[],
                   first_party=False, require_acr_values=False, disabled=False, created_at=5)
    snapshot = ClientRecord.of(model)

    assert snapshot.redirect_uris == ("https://rp/cb",) and snapshot.is_public
    model.redirect_uris.append("https://evil/cb")
    assert snapshot.redirect_uris == ("https://rp/cb",)
    with pytest.raises(AttributeError):
        snapshot.disabled = True  # type: ignore[misc]
