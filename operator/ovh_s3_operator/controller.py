"""The controller: one work queue drives every resource, and one place turns outcomes into scheduling.

**Why this shape.** kopf only watches (:mod:`.handlers`): every event about a resource — created,
changed, deleted, its Secret edited — only puts the resource's key in this queue. Workers take
keys and run :func:`.reconcile.reconcile`, which returns an :class:`.reconcile.Outcome`;
:meth:`Controller._schedule` alone decides when the resource is looked at next. This is the
workqueue of Kubernetes' own controllers (client-go, controller-runtime), chosen over a kopf
daemon per resource (no task per resource at a thousand resources, no second retry mechanism
next to kopf's) and over kopf timers (which cannot be woken early by an edited Secret):

* a key is never reconciled by two workers at once; an event for a key being reconciled makes it
  run once more afterwards; a key is queued once however many events arrive;
* wake-ups from edits of a managed Secret are debounced per resource, with a delay that doubles
  while the edits go on (a tenant editing its Secret in a loop costs OVH calls at a bounded rate);
* keys ready to run are served round-robin by namespace, and OVH calls are too
  (:mod:`.limiter`): a busy namespace cannot starve the others;
* drift checks of Ready resources are paced to use at most ``DRIFT_BUDGET_SHARE`` of the OVH rate:
  with too many resources for ``OVH_S3_OPERATOR_DRIFT_INTERVAL`` the interval stretches, which is
  logged and exposed (:attr:`Controller.drift_interval`).

Per-resource memory (:class:`.reconcile.Memory`) lives here and is released on every path by
which a resource disappears: its DELETED event, or a reconcile that finds it gone.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import heapq
import itertools
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, replace
from typing import Any

from . import metrics
from .config import Settings
from .errors import Retry
from .limiter import TENANT
from .model import FINALIZER, KIND
from .reconcile import Context, Memory, Outcome, reconcile

logger = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name)

DRIFT_BUDGET_SHARE = 0.25
"""The most of the OVH rate budget that drift checks of Ready resources may use."""
CALLS_PER_CHECK = 2.0
"""OVH calls of one drift check: the policy and the keys (the user comes from a shared listing)."""
SECRET_WAKE_QUIET = 60.0
"""Seconds without edits of a resource's Secret after which a new edit is restored at once again."""
SECRET_WAKE_MAX = 300.0
JITTER = 0.1


@dataclass(frozen=True)
class _Signature:
    """What of a resource's watch event is worth a reconcile when it changes: not its status (the
    operator's own writes), nor the finalizer appearing (the operator added it), but the finalizer
    disappearing (someone removed it)."""

    uid: str
    generation: int
    deleting: bool
    annotations: tuple[tuple[str, str], ...]
    finalizer_missing: bool

    def worth_a_reconcile(self, before: _Signature | None) -> bool:
        if before is None:
            return True
        added = before.finalizer_missing and not self.finalizer_missing
        return self != before and not (added and replace(self, finalizer_missing=True) == before)


def _signature(body: Mapping[str, Any]) -> _Signature:
    meta = body.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    return _Signature(str(meta.get("uid")), int(meta.get("generation") or 0), bool(meta.get("deletionTimestamp")),
                      tuple(sorted(annotations.items())), FINALIZER not in (meta.get("finalizers") or ()))


@dataclass
class _SecretWakes:
    last: float  # when the last restore was (or is to be) run
    delay: float  # how long after it the next one may run


class Controller:
    def __init__(self, ctx: Context, *, reconciler: Callable[..., Any] = reconcile,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ctx = ctx
        self.settings: Settings = ctx.settings
        self._reconcile = reconciler
        self._clock = clock
        self._memory: dict[Key, Memory] = {}
        self._seen: dict[Key, _Signature] = {}
        self._ready_keys: set[Key] = set()
        self.last_outcomes: dict[Key, tuple[bool, str]] = {}
        """The Ready status and reason each resource's last reconcile reported (for metrics)."""
        self._secret_wakes: dict[Key, _SecretWakes] = {}
        # The queue: keys due later (a heap, stale entries skipped), keys ready to run (by namespace,
        # served round-robin), keys being reconciled, and keys to run again after that.
        self._due: dict[Key, float] = {}
        self._heap: list[tuple[float, int, Key]] = []
        self._sequence = itertools.count()
        self._ready: dict[str, collections.deque[Key]] = {}
        self._turns: collections.deque[str] = collections.deque()
        self._queued: set[Key] = set()
        self._processing: set[Key] = set()
        self._dirty: set[Key] = set()
        self._work = asyncio.Event()
        self._timer_changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._jobs: list[tuple[Callable[[], Coroutine[Any, Any, None]], str]] = []
        self._checks: set[Key] = set()  # keys whose next run is a drift check, paced by the budget
        self._check_free = 0.0  # when the drift budget has room for the next check
        self._reported_interval = 0.0
        self.reconciles = 0

    # --- what kopf (or a test) feeds in --------------------------------------------------------

    def resource_event(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """A watch event of an OVHObjectStorageUser (``None``: listed when the watch started)."""
        meta = body.get("metadata") or {}
        key = (str(meta.get("namespace")), str(meta.get("name")))
        if event_type == "DELETED":
            self.forget(key)
            return
        signature = _signature(body)
        before = self._seen.get(key)
        self._seen[key] = signature
        if signature.worth_a_reconcile(before):
            self.enqueue(key)

    def secret_event(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """A watch event of a Secret labelled as managed by the operator: if someone else changed or
        deleted it, restore it (debounced per resource)."""
        if event_type is None:  # listed when the watch started: nothing happened to it
            return
        meta = body.get("metadata") or {}
        for ref in meta.get("ownerReferences") or ():
            if ref.get("kind") != KIND or not ref.get("controller"):
                continue
            key = (str(meta.get("namespace")), str(ref.get("name")))
            memory = self._memory.get(key)
            if memory is None or memory.uid != ref.get("uid"):
                continue
            own_write = memory.secret is not None and memory.secret.resource_version == meta.get("resourceVersion")
            if event_type == "DELETED" or not own_write:
                self.enqueue(key, self._secret_wake_delay(key))

    def _secret_wake_delay(self, key: Key) -> float:
        """When to restore a resource's Secret after an edit: at once the first time; while edits go on,
        each restore waits twice as long after the previous one (up to SECRET_WAKE_MAX). An edit before
        the next restore is due is covered by it."""
        now = self._clock()
        wakes = self._secret_wakes.get(key)
        if wakes is None or now - wakes.last > SECRET_WAKE_QUIET + wakes.delay:
            self._secret_wakes[key] = _SecretWakes(last=now, delay=1.0)
            return 0.0
        if wakes.last > now:
            return wakes.last - now
        at = max(now, wakes.last + wakes.delay)
        wakes.last, wakes.delay = at, min(SECRET_WAKE_MAX, wakes.delay * 2)
        return at - now

    def access_event(self, kind: str, event_type: str | None, body: Mapping[str, Any]) -> None:
        """An access policy (``kind`` "policy") or a namespace (``kind`` "namespace") changed: look again
        at every resource whose namespace's allowance changed (tightening takes effect at once)."""
        access = self.ctx.access
        namespaces = {namespace for namespace, _ in self._seen}
        before = {namespace: access.allowance(namespace) for namespace in namespaces}
        if kind == "policy":
            access.set_policy(body, deleted=event_type == "DELETED")
        else:
            access.set_namespace(body, deleted=event_type == "DELETED")
        self.requeue_changed(before)

    def requeue_changed(self, before: Mapping[str, object]) -> None:
        """Reconcile the resources of every namespace whose allowance is not what ``before`` says."""
        access = self.ctx.access
        changed = {namespace for namespace, allowance in before.items() if access.allowance(namespace) != allowance}
        for key in list(self._seen):
            if key[0] in changed:
                self.enqueue(key)

    def forget(self, key: Key) -> None:
        """Release everything known about a resource that is gone."""
        if self.ctx.projects is not None:
            self.ctx.projects.release(key)
        self._memory.pop(key, None)
        self._seen.pop(key, None)
        self._ready_keys.discard(key)
        self.last_outcomes.pop(key, None)
        self._secret_wakes.pop(key, None)
        self._due.pop(key, None)
        self._checks.discard(key)

    def keys(self) -> list[Key]:
        """The resources the controller knows."""
        return list(self._seen)

    # --- the queue -----------------------------------------------------------------------------

    def enqueue(self, key: Key, delay: float = 0.0) -> None:
        """Reconcile ``key`` after ``delay`` seconds (or sooner, if it is already due sooner)."""
        if delay <= 0:
            self._due.pop(key, None)
            self._checks.discard(key)
            self._make_ready(key)
            return
        due = self._clock() + delay
        if key in self._queued or (key in self._due and self._due[key] <= due):
            return
        self._checks.discard(key)
        self._due[key] = due
        heapq.heappush(self._heap, (due, next(self._sequence), key))
        self._timer_changed.set()

    def due(self, key: Key) -> float | None:
        """Seconds until ``key`` is reconciled again (0 if waiting for a worker), None if never."""
        if key in self._queued or key in self._dirty:
            return 0.0
        due = self._due.get(key)
        return None if due is None else max(0.0, due - self._clock())

    @property
    def idle(self) -> bool:
        """Nothing queued or running now (keys may be due later)."""
        return not self._queued and not self._processing and not self._dirty

    def _make_ready(self, key: Key) -> None:
        if key in self._processing:
            self._dirty.add(key)
            return
        if key in self._queued:
            return
        self._queued.add(key)
        namespace = key[0]
        queue = self._ready.get(namespace)
        if queue is None:
            queue = self._ready[namespace] = collections.deque()
            self._turns.append(namespace)
        queue.append(key)
        self._work.set()

    def _take(self) -> Key | None:
        while self._turns:
            namespace = self._turns.popleft()
            queue = self._ready[namespace]
            key = queue.popleft()
            if queue:
                self._turns.append(namespace)
            else:
                del self._ready[namespace]
            self._queued.discard(key)
            return key
        return None

    # --- running -------------------------------------------------------------------------------

    def every(self, interval: float, job: Callable[[], Awaitable[None]], name: str) -> None:
        """Run ``job`` every ``interval`` seconds (jittered; the first run at a random point of the first
        interval) for as long as the controller runs; a failing run is logged and retried next time."""
        async def loop() -> None:
            delay = interval * random.uniform(0.1, 1.0)
            while True:
                await asyncio.sleep(delay)
                try:
                    await job()
                except Exception:
                    logger.exception("%s failed; trying again in %.0fs", name, interval)
                delay = interval * random.uniform(1 - JITTER, 1 + JITTER)

        self._jobs.append((loop, name))

    def run_while_started(self, job: Callable[[], Coroutine[Any, Any, None]], name: str) -> None:
        """Run ``job`` (a loop, or something to do once) when the controller starts; cancel it when it stops."""
        self._jobs.append((job, name))

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._timer(), name="controller timer")]
        self._tasks += [asyncio.create_task(loop(), name=name) for loop, name in self._jobs]
        self._tasks += [asyncio.create_task(self._worker(), name=f"controller worker {i}")
                        for i in range(self.settings.max_concurrent_reconciles)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _timer(self) -> None:
        while True:
            self._timer_changed.clear()
            now = self._clock()
            while self._heap and self._heap[0][0] <= now:
                due, _, key = heapq.heappop(self._heap)
                if self._due.get(key) != due:
                    continue  # superseded
                del self._due[key]
                if key in self._checks:
                    # A drift check takes the next free slot of the drift budget: now, or later.
                    self._checks.discard(key)
                    slot = max(now, self._check_free)
                    self._check_free = slot + self._check_spacing()
                    if slot > now:
                        self._due[key] = slot
                        heapq.heappush(self._heap, (slot, next(self._sequence), key))
                        continue
                self._make_ready(key)
            timeout = self._heap[0][0] - now if self._heap else None
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancellation.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._timer_changed.wait()

    async def _worker(self) -> None:
        while True:
            key = self._take()
            if key is None:
                self._work.clear()
                await self._work.wait()
                continue
            self._processing.add(key)
            self._due.pop(key, None)
            memory = self._memory.setdefault(key, Memory())
            token = TENANT.set(key[0])
            try:
                outcome = await self._reconcile(self.ctx, key[0], key[1], memory)
            except Exception:  # a bug must not stop the resource from being retried
                logger.exception("[%s/%s] Reconcile failed unexpectedly; retrying", *key)
                outcome = Outcome(False, "InternalError", "The operator failed unexpectedly; see its log",
                                  retry=Retry.SOON)
            finally:
                TENANT.reset(token)
                self._processing.discard(key)
                self.reconciles += 1
            self._schedule(key, outcome)
            if key in self._dirty:
                self._dirty.discard(key)
                self._make_ready(key)

    # --- outcomes → scheduling ----------------------------------------------------------------

    def _schedule(self, key: Key, outcome: Outcome) -> None:
        result = "ready" if outcome.ready else "waiting" if outcome.after is not None else "failed"
        metrics.RECONCILES.labels(result, outcome.reason if not outcome.released else "Released").inc()
        if outcome.released:
            self.forget(key)
            return
        if key not in self._seen:  # deleted while being reconciled
            self._memory.pop(key, None)
            return
        self.last_outcomes[key] = (outcome.ready, outcome.reason)
        settings = self.settings
        if outcome.ready:
            self._ready_keys.add(key)
            self._schedule_check(key)
            if outcome.after is not None:  # key work due by the clock (a rotation, a grace period's end)
                self.enqueue(key, outcome.after)
            return
        self._ready_keys.discard(key)
        if outcome.after is not None:
            self.enqueue(key, outcome.after)
            return
        delay = {Retry.SOON: settings.retry_delay, Retry.CONFLICT: settings.conflict_retry_delay,
                 Retry.LATER: settings.permanent_retry_delay}.get(outcome.retry or Retry.ON_CHANGE)
        if delay is not None:  # ON_CHANGE: only a change of the resource (or of its access) helps
            self.enqueue(key, delay * random.uniform(1 - JITTER, 1 + JITTER))

    def drift_interval(self) -> float:
        """Seconds between full checks of a Ready resource against OVH: the configured interval,
        stretched when the checks of all Ready resources would exceed their share of the OVH rate."""
        configured = self.settings.drift_interval
        if not configured:
            metrics.DRIFT_INTERVAL.set(0)
            return math.inf
        needed = len(self._ready_keys) * self._check_spacing()
        interval = max(configured, needed)
        metrics.DRIFT_INTERVAL.set(interval)
        if interval > configured and abs(interval - self._reported_interval) > 0.1 * self._reported_interval:
            logger.warning(
                "Drift checks of %d resources need %.0fs within %d%% of the OVH rate budget: each resource is "
                "checked every %.0fs instead of every %.0fs (OVH_S3_OPERATOR_DRIFT_INTERVAL)",
                len(self._ready_keys), needed, DRIFT_BUDGET_SHARE * 100, interval, configured)
            self._reported_interval = interval
        return interval

    def _check_spacing(self) -> float:
        return CALLS_PER_CHECK / (DRIFT_BUDGET_SHARE * self.settings.ovh_requests_per_second)

    def _schedule_check(self, key: Key) -> None:
        """The next full check of a Ready resource: one drift interval after the last one. (It may
        wait longer for its turn in the drift budget, never less: the reconcile checks in full only
        once the interval has passed.)"""
        interval = self.drift_interval()
        memory = self._memory.get(key)
        if not math.isfinite(interval) or memory is None or memory.verified_at is None:
            return
        self.enqueue(key, max(1e-3, memory.verified_at + interval - self._clock()))
        if key in self._due:
            self._checks.add(key)
