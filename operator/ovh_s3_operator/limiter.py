"""The client-side rate limiter of OVH calls: a fair token bucket that backs off when OVH says 429.

* **Token bucket.** ``burst`` calls may go at once, then ``rate`` calls a second: a handful of new
  resources is not slowed at all, and the sustained rate stays below OVH's fair use.
* **Fair.** Callers waiting for a token are served round-robin by tenant (the namespace of the
  resource being reconciled, from :data:`TENANT`), so one namespace with many busy resources
  delays another namespace's call by at most one call per waiting namespace.
* **Headroom.** The sustained rate is ``HEADROOM`` (95 %) of the configured one: calls leave at an even
  pace but reach OVH with jitter (threads, the network), and at exactly OVH's own rate its bucket would
  have nothing to absorb it with.
* **AIMD.** A 429 cuts the rate by a quarter (down to 1/20 of the configured one) and empties the
  bucket; the rate then grows back linearly to the configured one over ``recovery`` seconds. A
  setting that is too high for the account corrects itself instead of earning 429s over and over,
  while a rare 429 costs about a second of calls.
* **Pause.** ``pause(seconds)`` (a ``Retry-After`` from OVH) holds every caller, not only the
  refused one.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import time
from collections.abc import Callable

TENANT: contextvars.ContextVar[str] = contextvars.ContextVar("tenant", default="")
"""Who the current task calls OVH for: the namespace of the resource being reconciled."""

MIN_RATE_SHARE = 0.05
HEADROOM = 0.95
DECREASE = 0.75


class RateLimiter:
    def __init__(self, rate: float, burst: int, *, recovery: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.configured_rate = rate * HEADROOM
        self.burst = float(max(1, burst))
        self.rate = self.configured_rate
        self._recovery = recovery
        self._clock = clock
        self._tokens = self.burst
        self._updated = clock()
        self._paused_until = 0.0
        self._waiters: dict[str, collections.deque[asyncio.Future[None]]] = {}
        self._turns: collections.deque[str] = collections.deque()  # tenants with waiters, in serving order
        self._dispatcher: asyncio.Task[None] | None = None
        self.throttled_count = 0

    # --- state ---------------------------------------------------------------------------------

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._updated)
        self._updated = now
        if self.rate < self.configured_rate:
            self.rate = min(self.configured_rate, self.rate + elapsed * self.configured_rate / self._recovery)
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)

    def _delay(self) -> float:
        """Seconds until a token is available (0 if one is now)."""
        self._refill()
        pause = self._paused_until - self._clock()
        if pause > 0:
            return pause
        return 0.0 if self._tokens >= 1 - 1e-9 else (1 - self._tokens) / self.rate  # (float rounding)

    @property
    def waiting(self) -> int:
        return sum(len(queue) for queue in self._waiters.values())

    # --- feedback from OVH ---------------------------------------------------------------------

    def throttled(self) -> None:
        """OVH answered 429: slow down and empty the bucket."""
        self._refill()
        self.rate = max(self.configured_rate * MIN_RATE_SHARE, self.rate * DECREASE)
        self._tokens = min(self._tokens, 0.0)
        self.throttled_count += 1

    def pause(self, seconds: float) -> None:
        """No call goes out for ``seconds`` (OVH sent Retry-After)."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    # --- acquiring -----------------------------------------------------------------------------

    async def acquire(self) -> None:
        """Wait for a token, taking turns with the other tenants' waiting calls."""
        if not self._turns and self._delay() == 0:
            self._tokens -= 1
            return
        tenant = TENANT.get()
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._waiters.get(tenant)
        if queue is None:
            queue = self._waiters[tenant] = collections.deque()
            self._turns.append(tenant)
        queue.append(waiter)
        if self._dispatcher is None or self._dispatcher.done():
            self._dispatcher = asyncio.create_task(self._dispatch(), name="ovh rate limiter")
        await waiter

    def _next_waiter(self) -> asyncio.Future[None] | None:
        while self._turns:
            tenant = self._turns.popleft()
            queue = self._waiters[tenant]
            while queue and queue[0].done():  # cancelled while waiting
                queue.popleft()
            if not queue:
                del self._waiters[tenant]
                continue
            waiter = queue.popleft()
            if queue:
                self._turns.append(tenant)
            else:
                del self._waiters[tenant]
            return waiter
        return None

    async def _dispatch(self) -> None:
        while self._turns:
            delay = self._delay()
            if delay > 0:
                await asyncio.sleep(delay)
                continue
            waiter = self._next_waiter()
            if waiter is not None:
                self._tokens -= 1
                waiter.set_result(None)
            await asyncio.sleep(0)  # let the served caller run before the next one is chosen
