"""The OVH rate limiter: burst, sustained rate, fairness between tenants, backing off on 429, pauses.

A fake clock drives the bucket; ``asyncio.sleep`` is replaced so that sleeping advances that clock.
"""

from __future__ import annotations

import asyncio

import pytest
from pytest_mock import MockerFixture

from ovh_s3_operator.limiter import DECREASE, HEADROOM, MIN_RATE_SHARE, TENANT, RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(mocker: MockerFixture) -> Clock:
    fake = Clock()
    real_sleep = asyncio.sleep

    async def sleep(seconds: float) -> None:
        fake.now += max(0.0, seconds)
        await real_sleep(0)

    mocker.patch("ovh_s3_operator.limiter.asyncio.sleep", side_effect=sleep)
    return fake


async def take(limiter: RateLimiter, tenant: str, served: list[tuple[str, float]], clock: Clock) -> None:
    TENANT.set(tenant)
    await limiter.acquire()
    served.append((tenant, clock.now))


async def test_a_burst_goes_at_once_then_the_sustained_rate(clock: Clock) -> None:
    limiter = RateLimiter(rate=2.0, burst=5, clock=clock)
    served: list[tuple[str, float]] = []
    await asyncio.gather(*(take(limiter, "a", served, clock) for _ in range(9)))
    times = [at - 1000.0 for _, at in served]
    assert times[:5] == [0.0] * 5
    spacing = 1 / (2.0 * HEADROOM)  # a little under the configured rate, so that jitter earns no 429
    assert times[5:] == pytest.approx([spacing, 2 * spacing, 3 * spacing, 4 * spacing])


async def test_waiting_callers_take_turns_by_tenant(clock: Clock) -> None:
    limiter = RateLimiter(rate=1.0, burst=1, clock=clock)
    served: list[tuple[str, float]] = []
    busy = [take(limiter, "busy", served, clock) for _ in range(6)]
    late = [take(limiter, "quiet", served, clock) for _ in range(2)]
    await asyncio.gather(*busy[:1])  # the bucket's one token
    await asyncio.gather(*busy[1:], *late)
    order = [tenant for tenant, _ in served]
    # After the first call, the quiet tenant is served every other call, not after all busy ones.
    assert order[:5] == ["busy", "busy", "quiet", "busy", "quiet"]


async def test_a_429_slows_down_and_the_rate_then_recovers(clock: Clock) -> None:
    limiter = RateLimiter(rate=10.0, burst=10, recovery=60.0, clock=clock)
    full = 10.0 * HEADROOM
    limiter.throttled()
    assert limiter.rate == pytest.approx(full * DECREASE)
    assert limiter.throttled_count == 1
    for _ in range(20):
        limiter.throttled()
    assert limiter.rate == pytest.approx(full * MIN_RATE_SHARE)  # never below the floor
    clock.now += 30
    limiter._refill()
    assert limiter.rate == pytest.approx(full * MIN_RATE_SHARE + 30 * full / 60.0)
    clock.now += 60
    limiter._refill()
    assert limiter.rate == pytest.approx(full)


async def test_a_429_empties_the_bucket(clock: Clock) -> None:
    limiter = RateLimiter(rate=1.0, burst=10, clock=clock)
    limiter.throttled()
    served: list[tuple[str, float]] = []
    await take(limiter, "a", served, clock)
    assert served[0][1] - 1000.0 == pytest.approx(1 / (HEADROOM * DECREASE))  # one token at the lower rate


async def test_a_pause_holds_every_caller(clock: Clock) -> None:
    limiter = RateLimiter(rate=100.0, burst=100, clock=clock)
    limiter.pause(30)
    served: list[tuple[str, float]] = []
    await asyncio.gather(take(limiter, "a", served, clock), take(limiter, "b", served, clock))
    assert all(at - 1000.0 >= 30 for _, at in served)


async def test_a_cancelled_waiter_gives_its_turn_away(clock: Clock) -> None:
    limiter = RateLimiter(rate=1.0, burst=1, clock=clock)
    served: list[tuple[str, float]] = []
    await take(limiter, "a", served, clock)
    doomed = asyncio.create_task(take(limiter, "b", served, clock))
    await asyncio.sleep(0)
    doomed.cancel()
    await take(limiter, "c", served, clock)
    assert [tenant for tenant, _ in served] == ["a", "c"]
    assert limiter.waiting == 0
