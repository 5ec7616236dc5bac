"""The ``idp.store.Store`` contract, run against every implementation.

MemoryStore always runs, on an injected clock. RedisStore runs against ``IDP_TEST_REDIS_URL``
or ``IDP_CONTRACT_REDIS_URL`` (e.g. ``redis://127.0.0.1:6379/15``), each test in its own
namespace, flushed afterwards. Without either variable the Redis rows are skipped locally,
and fail under CI: the contract is never skipped silently where it matters.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest

from idp.store import Store, StoreUnavailable
from idp.store.memory import MemoryStore
from idp.store.redis import CONNECT_TIMEOUT_SECONDS, SOCKET_TIMEOUT_SECONDS, RedisStore

# CI's embedded pass names a scratch Redis just for this contract (IDP_CONTRACT_REDIS_URL).
REDIS_URL = os.environ.get("IDP_TEST_REDIS_URL") or os.environ.get("IDP_CONTRACT_REDIS_URL", "")
IN_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
#: Redis counts expiry in milliseconds; sleeping this long after a 1 s TTL is safely past it.
PAST_ONE_SECOND_TTL = 1.2
THREADS = 20


class FakeClock:
    """A wall clock that moves only when told to."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class StoreUnderTest:
    store: Store
    #: Let ``seconds`` pass for the store: moves the fake clock, or sleeps for Redis.
    advance: Callable[[float], None]


def _redis_param() -> Any:
    if REDIS_URL or IN_CI:
        # Under CI without a URL the fixture fails the test instead of skipping it.
        return pytest.param("redis", id="redis")
    return pytest.param(
        "redis", id="redis",
        marks=pytest.mark.skip(reason="IDP_TEST_REDIS_URL is not set (e.g. "
                                      "redis://127.0.0.1:6379/15): RedisStore contract not run"),
    )


def _require_redis_url() -> str:
    if not REDIS_URL:
        pytest.fail("CI is set but IDP_TEST_REDIS_URL is not: the RedisStore contract must run "
                    "in CI; point IDP_TEST_REDIS_URL at a scratch Redis database")
    return REDIS_URL


@pytest.fixture
def redis_stores() -> Iterator[Callable[[], RedisStore]]:
    """Factory of RedisStores, each in a fresh namespace that is flushed afterwards."""
    url = _require_redis_url()
    made: list[RedisStore] = []

    def make() -> RedisStore:
        made.append(RedisStore(url, f"test-contract-{uuid.uuid4().hex}"))
        return made[-1]

    try:
        yield make
    finally:
        for store in made:
            store.flush_namespace()


@pytest.fixture(params=[pytest.param("memory", id="memory"), _redis_param()])
def subject(request: pytest.FixtureRequest) -> StoreUnderTest:
    if request.param == "memory":
        clock = FakeClock()
        return StoreUnderTest(MemoryStore(clock=clock), clock.advance)
    make = request.getfixturevalue("redis_stores")
    return StoreUnderTest(make(), time.sleep)


def _race(worker: Callable[[int], Any], threads: int = THREADS) -> list[Any]:
    """Run ``worker(i)`` in ``threads`` threads released together; results in thread order."""
    barrier = threading.Barrier(threads)

    def start(i: int) -> Any:
        barrier.wait(timeout=10)
        return worker(i)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(start, range(threads)))


# -- get / put -------------------------------------------------------------------------------

NESTED = {"user": {"id": 7, "events": [{"method": "password", "at": 1}, {"amr": ["otp"]}]},
          "flags": [True, False, None], "ratio": 0.25, "name": "Zoë ✓"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(NESTED, NESTED, id="nested-json"),
        pytest.param([1, "two", [3.5, {"four": None}]], [1, "two", [3.5, {"four": None}]],
                     id="list"),
        pytest.param("text ✓", "text ✓", id="str"),
        pytest.param(0, 0, id="zero"),
        pytest.param(False, False, id="false"),
        pytest.param({}, {}, id="empty-dict"),
        pytest.param((1, 2), [1, 2], id="tuple-becomes-list"),
        pytest.param({1: "a"}, {"1": "a"}, id="int-keys-become-str"),
    ],
)
def test_put_then_get_returns_the_json_value(subject: StoreUnderTest, value: Any,
                                             expected: Any) -> None:
    subject.store.put("k", value, ttl=60)
    assert subject.store.get("k") == expected


def test_get_missing_key_is_none(subject: StoreUnderTest) -> None:
    assert subject.store.get("never-written") is None


def test_put_overwrites(subject: StoreUnderTest) -> None:
    subject.store.put("k", {"v": 1}, ttl=60)
    subject.store.put("k", {"v": 2}, ttl=60)
    assert subject.store.get("k") == {"v": 2}


def test_put_of_a_non_json_value_raises_and_stores_nothing(subject: StoreUnderTest) -> None:
    with pytest.raises(TypeError):
        subject.store.put("k", {"when": object()}, ttl=60)
    assert subject.store.get("k") is None


def test_returned_values_are_copies(subject: StoreUnderTest) -> None:
    written = {"list": [1], "inner": {"a": 1}}
    subject.store.put("k", written, ttl=60)
    written["list"].append("changed after put")

    first = subject.store.get("k")
    first["list"].append("changed after get")
    first["inner"]["a"] = 2

    assert subject.store.get("k") == {"list": [1], "inner": {"a": 1}}


# -- expiry ----------------------------------------------------------------------------------

def test_every_write_expires_after_its_ttl(subject: StoreUnderTest) -> None:
    store = subject.store
    store.put("put", "v", ttl=1)
    assert store.add("add", "v", ttl=1) is True
    assert store.incr("incr", ttl=1) == 1
    store.put("long", "v", ttl=60)
    assert store.get("put") == "v"

    subject.advance(PAST_ONE_SECOND_TTL)  # one wait serves every expiry below

    assert store.get("put") is None
    assert store.ttl("put") is None
    assert store.pop("put") is None
    assert store.add("add", "again", ttl=60) is True, "an expired key counts as absent"
    assert store.get("add") == "again"
    assert store.incr("incr", ttl=60) == 1, "an expired counter starts again"
    assert store.get("long") == "v"


@pytest.mark.parametrize("ttl", [1, 60, 3600])
def test_ttl_reports_seconds_left(subject: StoreUnderTest, ttl: int) -> None:
    subject.store.put("k", "v", ttl=ttl)
    assert ttl - 1 <= subject.store.ttl("k") <= ttl


def test_ttl_of_missing_key_is_none(subject: StoreUnderTest) -> None:
    assert subject.store.ttl("never-written") is None


def test_ttls_reads_each_key_in_order(subject: StoreUnderTest) -> None:
    subject.store.put("short", "v", ttl=10)
    subject.store.put("long", "v", ttl=3600)
    short, missing, long = subject.store.ttls("short", "never-written", "long")
    assert 9 <= short <= 10
    assert missing is None
    assert 3599 <= long <= 3600
    assert subject.store.ttls() == []


# -- add / pop / delete ----------------------------------------------------------------------

def test_add_stores_only_when_absent(subject: StoreUnderTest) -> None:
    assert subject.store.add("k", "first", ttl=60) is True
    assert subject.store.add("k", "second", ttl=60) is False
    assert subject.store.get("k") == "first"


def test_add_after_delete_stores_again(subject: StoreUnderTest) -> None:
    assert subject.store.add("k", "first", ttl=60) is True
    subject.store.delete("k")
    assert subject.store.add("k", "second", ttl=60) is True
    assert subject.store.get("k") == "second"


def test_pop_returns_the_value_then_removes_it(subject: StoreUnderTest) -> None:
    subject.store.put("k", {"code": "abc"}, ttl=60)
    assert subject.store.pop("k") == {"code": "abc"}
    assert subject.store.pop("k") is None
    assert subject.store.get("k") is None


def test_pop_missing_key_is_none(subject: StoreUnderTest) -> None:
    assert subject.store.pop("never-written") is None


def test_delete_removes_every_named_key(subject: StoreUnderTest) -> None:
    for key in ("a", "b", "c"):
        subject.store.put(key, key, ttl=60)
    subject.store.delete("a", "b", "never-written")
    subject.store.delete()  # nothing to delete is not an error
    assert [subject.store.get(k) for k in ("a", "b", "c")] == [None, None, "c"]


# -- counters --------------------------------------------------------------------------------

def test_incr_counts_from_one_and_get_reads_the_count(subject: StoreUnderTest) -> None:
    assert [subject.store.incr("n", ttl=60) for _ in range(3)] == [1, 2, 3]
    assert subject.store.get("n") == 3


def test_incr_sets_the_ttl_only_on_the_first_increment(subject: StoreUnderTest) -> None:
    subject.store.incr("n", ttl=100)
    subject.store.incr("n", ttl=5)
    subject.store.incr("n", ttl=10_000)
    assert 98 <= subject.store.ttl("n") <= 100


def test_incr_each_counts_every_key_like_incr(subject: StoreUnderTest) -> None:
    subject.store.incr("a", ttl=100)
    assert subject.store.incr_each(["a", "b"], [5, 50]) == [2, 1]
    assert subject.store.incr_each(["a", "b"], [5, 5]) == [3, 2]
    assert 98 <= subject.store.ttl("a") <= 100, "an existing counter keeps its expiry"
    assert 49 <= subject.store.ttl("b") <= 50, "a new counter gets its own ttl"
    assert subject.store.incr_each([], []) == []


def test_incr_each_is_atomic_per_key_under_concurrency(subject: StoreUnderTest) -> None:
    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(lambda _: subject.store.incr_each(["x", "y"], [60, 60]),
                                range(THREADS)))
    assert sorted(r[0] for r in results) == list(range(1, THREADS + 1))
    assert sorted(r[1] for r in results) == list(range(1, THREADS + 1))


def test_decr_takes_one_back_and_keeps_the_expiry(subject: StoreUnderTest) -> None:
    subject.store.incr("n", ttl=100)
    subject.store.incr("n", ttl=100)
    subject.store.decr("n")
    assert subject.store.get("n") == 1
    assert 98 <= subject.store.ttl("n") <= 100


def test_decr_never_creates_a_counter_nor_goes_below_zero(subject: StoreUnderTest) -> None:
    subject.store.decr("absent")
    assert subject.store.get("absent") is None
    subject.store.incr("n", ttl=60)
    subject.store.decr("n")
    subject.store.decr("n")
    assert subject.store.get("n") == 0
    assert subject.store.incr("n", ttl=60) == 1


# -- atomicity under threads -----------------------------------------------------------------

def test_concurrent_pop_has_exactly_one_winner(subject: StoreUnderTest) -> None:
    subject.store.put("code", {"sub": "u1"}, ttl=60)
    results = _race(lambda _: subject.store.pop("code"))
    assert [r for r in results if r is not None] == [{"sub": "u1"}]


def test_concurrent_add_has_exactly_one_winner(subject: StoreUnderTest) -> None:
    results = _race(lambda i: subject.store.add("nonce", i, ttl=60))
    winners = [i for i, stored in enumerate(results) if stored]
    assert len(winners) == 1
    assert subject.store.get("nonce") == winners[0]


def test_concurrent_incr_loses_no_update(subject: StoreUnderTest) -> None:
    per_thread = 50
    results = _race(lambda _: [subject.store.incr("n", ttl=60) for _ in range(per_thread)])
    seen = sorted(value for chunk in results for value in chunk)
    assert seen == list(range(1, THREADS * per_thread + 1))
    assert subject.store.get("n") == THREADS * per_thread


def test_concurrent_decr_loses_no_update(subject: StoreUnderTest) -> None:
    for _ in range(THREADS * 2):
        subject.store.incr("n", ttl=60)
    _race(lambda _: subject.store.decr("n"))
    assert subject.store.get("n") == THREADS


@pytest.mark.parametrize("limit", [1, 3, 5])
def test_racing_wrong_guesses_never_get_more_than_the_limit_evaluated(
        subject: StoreUnderTest, limit: int) -> None:
    """L3: the throttle's check-and-count is one decision in the store (NIST SP 800-63B-4
    §3.2.2), so 30 simultaneous wrong guesses evaluate at most ``limit`` of them."""
    from idp.errors import TooManyRequests
    from idp.throttle import Limit, Throttle

    throttle = Throttle(subject.store)
    key = Limit("login:user:alice", limit, window=3600, base_delay=60, max_delay=900)
    evaluated: list[int] = []

    def guess(i: int) -> bool:
        try:
            throttle.begin(key)
        except TooManyRequests:
            return False
        evaluated.append(i)  # the wrong secret: nothing more to do, the count stands
        return True

    results = _race(guess, threads=30)

    assert sum(results) == len(evaluated) <= limit
    assert len(evaluated) == limit  # the limit itself is still reachable
    assert throttle.failures(key) == limit
    with pytest.raises(TooManyRequests):
        throttle.begin(key)


def test_a_success_resets_its_key_and_refunds_the_others(subject: StoreUnderTest) -> None:
    from idp.throttle import Limit, Throttle

    throttle = Throttle(subject.store)
    account = Limit("login:user:alice", 3, 3600, 2, 900)
    address = Limit("login:ip:192.0.2.1", 3, 3600, 2, 900)
    throttle.begin(account, address)  # a wrong password
    attempt = throttle.begin(account, address)

    assert attempt.failures_before(account) == 1
    attempt.succeeded(account)

    assert throttle.failures(account) == 0
    assert throttle.failures(address) == 1  # the earlier failure stays, the success does not


# -- health ----------------------------------------------------------------------------------

def test_ping_succeeds_when_the_store_is_up(subject: StoreUnderTest) -> None:
    assert subject.store.ping() is None


# -- Redis only -----------------------------------------------------------------------------

@pytest.mark.parametrize("_backend", [_redis_param()])
def test_redis_namespaces_are_isolated(_backend: str,
                                       redis_stores: Callable[[], RedisStore]) -> None:
    ours, theirs = redis_stores(), redis_stores()
    ours.put("k", "ours", ttl=60)
    theirs.put("k", "theirs", ttl=60)

    ours.flush_namespace()

    assert (ours.get("k"), theirs.get("k")) == (None, "theirs")


# -- Redis down ------------------------------------------------------------------------------

CLOSED_PORT_URL = "redis://127.0.0.1:1/0"


@pytest.mark.parametrize(
    "operation",
    [
        pytest.param(lambda s: s.get("k"), id="get"),
        pytest.param(lambda s: s.put("k", {"v": 1}, 60), id="put"),
        pytest.param(lambda s: s.add("k", 1, 60), id="add"),
        pytest.param(lambda s: s.pop("k"), id="pop"),
        pytest.param(lambda s: s.delete("k"), id="delete"),
        pytest.param(lambda s: s.incr("k", 60), id="incr"),
        pytest.param(lambda s: s.ttl("k"), id="ttl"),
        pytest.param(lambda s: s.ping(), id="ping"),
    ],
)
def test_redis_down_raises_store_unavailable_quickly(operation: Callable[[Store], Any]) -> None:
    store = RedisStore(CLOSED_PORT_URL, f"test-down-{uuid.uuid4().hex}")
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="redis"):
        operation(store)
    assert time.monotonic() - started < min(CONNECT_TIMEOUT_SECONDS, SOCKET_TIMEOUT_SECONDS)
