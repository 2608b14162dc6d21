"""The per-resource loop behind the kopf daemon: drift checks, slow retries, and wake-ups.

A Ready resource is verified against OVH every drift interval. A resource that is not Ready is
retried after the delay its last failure asked for (short for transient failures, the slow
PERMANENT_RETRY_DELAY for failures that need a human). A wake-up (its Secret was edited or deleted)
runs a reconcile at once. All waits are jittered; the first one is a random part of the interval, so
that an operator restart does not align the checks of all resources.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Mapping
from typing import Any

import kopf

from .model import KIND, Resource
from .reconcile import is_ready, reconcile
from .runtime import Runtime

IDLE_RECHECK = 60.0  # seconds between looks at a Ready resource when drift checks are off


def _next_delay(runtime: Runtime, ready: bool) -> float | None:
    if ready:
        return runtime.settings.drift_interval or None
    return runtime.settings.permanent_retry_delay


async def _sleep(stopped: kopf.DaemonStopped, wakeup: asyncio.Event, seconds: float) -> bool:
    """Sleep until ``seconds`` pass, the daemon is stopped or a wake-up comes; True for a wake-up."""
    waiters = {asyncio.ensure_future(stopped.wait()), asyncio.ensure_future(wakeup.wait())}
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiter
    woken = wakeup.is_set()
    wakeup.clear()
    return woken


async def handled_by_kopf(runtime: Runtime, resource: Resource, logger: kopf.Logger) -> None:
    """Reconcile from a kopf change handler, noting whether kopf will retry it soon by itself."""
    try:
        await reconcile(runtime, resource, logger, full=False)
    except kopf.TemporaryError:
        runtime.kopf_retrying.add(resource.uid)
        raise
    except kopf.PermanentError:
        runtime.kopf_retrying.discard(resource.uid)
        raise
    runtime.kopf_retrying.discard(resource.uid)


def secret_event(runtime: Runtime, event_type: str | None, body: Mapping[str, Any]) -> None:
    """Wake the owner's check when someone else changed or deleted its Secret (not for the operator's
    own writes, nor for kopf's initial listing of existing Secrets)."""
    if event_type is None:
        return
    meta = body.get("metadata") or {}
    for ref in meta.get("ownerReferences") or ():
        uid = ref.get("uid")
        if ref.get("kind") != KIND or not uid:
            continue
        if event_type == "DELETED" or runtime.written_secrets.get(uid) != meta.get("resourceVersion"):
            runtime.wake(uid)


async def run(runtime: Runtime, body: kopf.Body, stopped: kopf.DaemonStopped, logger: kopf.Logger) -> None:
    settings = runtime.settings
    resource = Resource.from_body(body)
    wakeup = runtime.wakeup(resource.uid)
    delay = (_next_delay(runtime, is_ready(resource)) or IDLE_RECHECK) * random.uniform(0.1, 1.0)
    retrying = False  # whether this loop is retrying a failure of its own
    while not stopped:
        woken = await _sleep(stopped, wakeup, delay)
        if stopped:
            return
        resource = Resource.from_body(body)
        if not (woken or retrying) and _next_delay(runtime, is_ready(resource)) is None:
            delay = IDLE_RECHECK
            continue
        try:
            next_delay = _next_delay(runtime, await reconcile(runtime, resource, logger, full=not woken))
            retrying = False
        except kopf.TemporaryError as error:
            # Retry soon unless a kopf handler is already doing so for this resource.
            retrying = resource.uid not in runtime.kopf_retrying
            next_delay = error.delay if retrying else settings.permanent_retry_delay
        except kopf.PermanentError:
            retrying, next_delay = False, settings.permanent_retry_delay
        except Exception:  # a bug must not end the checks of this resource
            logger.exception("Periodic check failed unexpectedly; retrying")
            retrying, next_delay = True, settings.retry_delay
        delay = (next_delay or IDLE_RECHECK) * random.uniform(0.9, 1.1)
