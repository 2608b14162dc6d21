"""When to look at a new OVH user: learned from how long the recent users took to become ``ok``.

OVH creates a user ``creating`` and makes it ``ok`` some seconds later (about 14 s seen on OVH; the
sandbox's ``--ovh-activation``). Polling early wastes calls, polling late wastes time. For each new
user this module learns two bounds of that delay, measured from OVH's answer to the creation to
when a look at the user was sent: a look that found it ``ok`` gives an upper bound, one that found
it ``creating`` a lower bound. The first look at the next user comes at the smallest recent upper
bound. Every ``PROBE_EVERY``-th user is looked at earlier — half-way between the bounds, or a
quarter earlier when they are close — so that the estimate also comes down when OVH gets faster;
a bound that a later look contradicts is dropped; a look that comes too early is followed by looks
at a short interval. With nothing learned yet, the first
look comes after ``poll`` seconds (OVH_S3_OPERATOR_USER_POLL_INTERVAL).
"""

from __future__ import annotations

from collections import deque

PROBE_EVERY = 8
PROBE_FACTOR = 0.75


class ActivationEstimate:
    def __init__(self, poll: float, *, window: int = 32) -> None:
        self.poll = poll
        self._upper: deque[float] = deque(maxlen=window)
        self._lower: deque[float] = deque(maxlen=window)
        self._started: dict[int, float] = {}
        self._looked: set[int] = set()  # users looked at once already
        self._probed: set[int] = set()  # users whose first look was an early probe
        self._count = 0

    def started(self, user_id: int, at: float) -> None:
        """OVH answered the creation of ``user_id`` at ``at``."""
        self._started[user_id] = at
        self._count += 1

    def seen(self, user_id: int, sent: float, ok: bool) -> None:
        """A look at the user, sent at ``sent``, found it ``ok`` (or not yet)."""
        start = self._started.get(user_id)
        if start is None:
            return
        self._looked.add(user_id)
        bound = sent - start
        if ok:  # bounds this contradicts are from a slower OVH
            self._upper.append(bound)
            self._lower = deque((b for b in self._lower if b < bound), maxlen=self._lower.maxlen)
            self.forget(user_id)
        else:
            self._lower.append(bound)
            self._upper = deque((b for b in self._upper if b > bound), maxlen=self._upper.maxlen)

    def expected(self) -> float | None:
        """Seconds after the creation answer when a new user should be ``ok``; None before any is known."""
        return min(self._upper) if self._upper else None

    def _probe(self, upper: float) -> float:
        lower = max(self._lower, default=None)
        if lower is not None and lower < upper * 0.95:
            return (lower + upper) / 2
        return upper * PROBE_FACTOR

    def next_look(self, user_id: int, now: float) -> float:
        """Seconds from ``now`` until the next look at ``user_id``."""
        start, expected = self._started.get(user_id), self.expected()
        if start is None or expected is None:
            return self.poll
        if user_id in self._looked:
            if user_id in self._probed:  # an early probe missed: look when the user is expected
                self._probed.discard(user_id)
                if start + expected > now:
                    return start + expected - now
            return min(self.poll, max(0.25, expected / 4))  # the expected look came too early
        first = expected
        if self._count % PROBE_EVERY == 0:
            first = self._probe(expected)
            self._probed.add(user_id)
        return max(0.0, start + first - now)

    def forget(self, user_id: int) -> None:
        self._started.pop(user_id, None)
        self._looked.discard(user_id)
        self._probed.discard(user_id)
