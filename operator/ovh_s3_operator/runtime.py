"""Process-wide state kept in kopf's memo: settings, the two API clients, per-resource locks and wake-ups."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from .config import Settings
from .k8s import KubeClient, new_api_client
from .ovh_api import OVHClient


@dataclass
class Runtime:
    settings: Settings
    ovh: OVHClient
    kube: KubeClient
    executors: tuple[ThreadPoolExecutor, ...]
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    _wakeups: dict[str, asyncio.Event] = field(default_factory=dict)
    written_secrets: dict[str, str] = field(default_factory=dict)
    """resourceVersion of the Secret each resource last wrote (to skip the watch events of own writes)."""
    kopf_retrying: set[str] = field(default_factory=set)
    """Resources whose kopf change handler failed temporarily: kopf retries those soon by itself."""

    @classmethod
    def start(cls, settings: Settings) -> Runtime:
        # Separate pools: Kubernetes calls never delay an OVH request that already passed the rate limiter.
        ovh_pool = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="ovh")
        kube_pool = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="kube")
        return cls(settings=settings, ovh=OVHClient(settings, ovh_pool),
                   kube=KubeClient(new_api_client(), kube_pool), executors=(ovh_pool, kube_pool))

    def close(self) -> None:
        for executor in self.executors:
            executor.shutdown(wait=False, cancel_futures=True)

    def lock(self, uid: str) -> asyncio.Lock:
        """Serializes everything done to one resource (handlers, periodic checks, Secret events)."""
        return self._locks.setdefault(uid, asyncio.Lock())

    def wakeup(self, uid: str) -> asyncio.Event:
        """The event the resource's periodic check waits on besides its timer."""
        return self._wakeups.setdefault(uid, asyncio.Event())

    def wake(self, uid: str | None) -> None:
        """Make the resource's periodic check run now (e.g. its Secret was edited); no-op if it has none."""
        event = self._wakeups.get(uid or "")
        if event is not None:
            event.set()

    def forget(self, uid: str) -> None:
        self._locks.pop(uid, None)
        self._wakeups.pop(uid, None)
        self.written_secrets.pop(uid, None)
        self.kopf_retrying.discard(uid)
