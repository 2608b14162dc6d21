"""Leader election for running several replicas: one acts, the others wait to take over.

A coordination.k8s.io/v1 Lease (``ovh-s3-operator`` in the operator's namespace) names the leader, as
client-go's leader election does (``tools/leaderelection``): the leader renews it every
``retry`` seconds; a standby takes it over once it has seen no renewal for ``duration`` seconds (on
its own clock: the times written in the Lease are never compared between hosts); a leader that
cannot renew for ``deadline`` seconds steps down; a leader that stops releases the Lease, so that a
standby takes over within ``retry`` seconds instead of ``duration``.

Only the leader runs the controller's workers, timers and sweeps. Every replica watches (kopf) and
keeps its queue and access index warm, so a new leader starts with the complete picture.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from . import metrics
from .errors import KubeAlreadyExists, KubeConflict, KubeNotFound, KubernetesAPIError
from .kube_api import KubeClient
from .model import micro_time_now

logger = logging.getLogger(__name__)

LEASE_NAME = "ovh-s3-operator"



class LeaderElector:
    def __init__(self, kube: KubeClient, namespace: str, identity: str, *, duration: float,
                 on_lead: Callable[[], Awaitable[None]], on_lose: Callable[[], Awaitable[None]],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._kube, self._namespace, self.identity = kube, namespace, identity
        self.duration = duration
        self.retry = max(0.2, duration / 7.5)  # client-go's defaults: 15 s lease, 2 s retry, 10 s deadline
        self.deadline = duration * 2 / 3
        self._on_lead, self._on_lose = on_lead, on_lose
        self._clock = clock
        self.leading = False
        self._renewed = 0.0
        self._observed: tuple[Any, float] | None = None  # (the lease's record, when it was first seen)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="leader election")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.leading:
            await self._step_down()
            with contextlib.suppress(KubernetesAPIError):
                await self._release()

    async def _run(self) -> None:
        logger.info("Waiting to lead (Lease %s/%s, as %s)", self._namespace, LEASE_NAME, self.identity)
        while True:
            try:
                held = await self._acquire_or_renew()
            except KubernetesAPIError as error:
                logger.warning("Could not read or renew Lease %s/%s: %s", self._namespace, LEASE_NAME, error.message)
                held = False
            now = self._clock()
            if held:
                self._renewed = now
                if not self.leading:
                    self.leading = True
                    metrics.LEADER.set(1)
                    logger.info("Leading now (Lease %s/%s)", self._namespace, LEASE_NAME)
                    await self._on_lead()
            elif self.leading and now - self._renewed > self.deadline:
                logger.warning("Could not renew the Lease for %.0fs: stepping down", now - self._renewed)
                await self._step_down()
            await asyncio.sleep(self.retry)

    async def _step_down(self) -> None:
        self.leading = False
        metrics.LEADER.set(0)
        await self._on_lose()

    async def _acquire_or_renew(self) -> bool:
        lease = await self._kube.read_lease(self._namespace, LEASE_NAME)
        now = self._clock()
        spec = {"holderIdentity": self.identity, "leaseDurationSeconds": max(1, round(self.duration)),
                "acquireTime": micro_time_now(), "renewTime": micro_time_now(), "leaseTransitions": 0}
        if lease is None:
            try:
                await self._kube.create_lease(self._namespace, {"metadata": {"name": LEASE_NAME}, "spec": spec})
            except KubeAlreadyExists:
                return False
            return True
        current = lease.get("spec") or {}
        record = (current.get("holderIdentity"), current.get("renewTime"), current.get("leaseDurationSeconds"))
        if self._observed is None or self._observed[0] != record:
            self._observed = (record, now)
        holder = current.get("holderIdentity") or ""
        expired = now - self._observed[1] > float(current.get("leaseDurationSeconds") or self.duration)
        if holder and holder != self.identity and not expired:
            return False
        if holder == self.identity:
            spec["acquireTime"] = current.get("acquireTime") or spec["acquireTime"]
            spec["leaseTransitions"] = current.get("leaseTransitions") or 0
        else:
            spec["leaseTransitions"] = int(current.get("leaseTransitions") or 0) + 1
        body = {"metadata": {"name": LEASE_NAME, "resourceVersion": lease["metadata"]["resourceVersion"]},
                "spec": spec}
        try:
            await self._kube.replace_lease(self._namespace, LEASE_NAME, body)
        except (KubeConflict, KubeNotFound):
            return False
        return True

    async def _release(self) -> None:
        lease = await self._kube.read_lease(self._namespace, LEASE_NAME)
        if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
            return
        spec = {**lease["spec"], "holderIdentity": "", "leaseDurationSeconds": 1, "renewTime": micro_time_now()}
        await self._kube.replace_lease(self._namespace, LEASE_NAME, {
            "metadata": {"name": LEASE_NAME, "resourceVersion": lease["metadata"]["resourceVersion"]},
            "spec": spec})
        logger.info("Released the Lease")
