"""The register of OVH users the operator holds or let go without its marker saying so.

The marker in an OVH user's description (:class:`.model.Marker`) proves which resource created a
user. Two cases need a record the marker cannot give, and that no tenant can forge:

* **adopted** users (``spec.userId``): a user the operator did not create carries no marker (OVH cannot
  change a description), so which resource holds it is recorded here; two resources never hold the
  same user, and a new resource cannot take a user over from a live one;
* **retained** users (``deletionPolicy: Retain``): the resource is gone but its user is meant to stay,
  so the orphan sweep (:mod:`.orphans`) must leave it alone.

The register is one ConfigMap, ``ovh-s3-operator-users``, in the operator's own namespace, where
tenants cannot write. Keys are ``adopted.<user id>`` and ``retained.<user id>``; values name the
resource, ``<namespace>/<name>/<uid>``. Every write carries the resourceVersion it was computed from
(optimistic concurrency), so two resources, or two replicas, racing for one user cannot both win.
At about 80 bytes an entry, the ConfigMap's 1 MiB holds some 12,000 users.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import KubeAlreadyExists, KubeConflict, KubernetesAPIError
from .model import Resource, format_time
from .ports import Kube

logger = logging.getLogger(__name__)

REGISTRY_NAME = "ovh-s3-operator-users"
ADOPTED = "adopted."
RETAINED = "retained."
ATTEMPTS = 5


@dataclass(frozen=True)
class Holder:
    """The resource an entry names."""

    namespace: str
    name: str
    uid: str

    @classmethod
    def of(cls, resource: Resource) -> Holder:
        return cls(resource.namespace, resource.name, resource.uid)

    @classmethod
    def parse(cls, text: str) -> Holder | None:
        parts = text.split(" ", 1)[0].split("/")
        return cls(*parts) if len(parts) == 3 and all(parts) else None

    @property
    def text(self) -> str:
        return f"{self.namespace}/{self.name}/{self.uid}"


class Registry:
    """Reads and writes the register through the Kubernetes port."""

    def __init__(self, kube: Kube, namespace: str) -> None:
        self._kube = kube
        self.namespace = namespace

    async def _read(self) -> tuple[dict[str, str], str | None]:
        body = await self._kube.read_config_map(self.namespace, REGISTRY_NAME)
        if body is None:
            return {}, None
        data = body.get("data") or {}
        return {str(k): str(v) for k, v in data.items()}, str((body.get("metadata") or {}).get("resourceVersion"))

    async def _write(self, change: Callable[[dict[str, str]], Awaitable[Mapping[str, str | None] | None]]) -> None:
        """Apply ``change`` (read → the keys to set or remove, None for nothing) with optimistic concurrency."""
        for _ in range(ATTEMPTS):
            data, version = await self._read()
            patch = await change(data)
            if not patch:
                return
            try:
                if version is None:
                    body: dict[str, Any] = {
                        "apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": REGISTRY_NAME, "namespace": self.namespace,
                                     "labels": {"app.kubernetes.io/managed-by": "ovh-s3-operator"}},
                        "data": {k: v for k, v in patch.items() if v is not None}}
                    await self._kube.create_config_map(self.namespace, body)
                else:
                    await self._kube.patch_config_map(self.namespace, REGISTRY_NAME, patch, version)
                return
            except (KubeConflict, KubeAlreadyExists):
                continue  # someone wrote in between: read again
        raise KubernetesAPIError(f"ConfigMap {self.namespace}/{REGISTRY_NAME} kept changing while being updated; "
                                 "retrying")

    async def holder(self, user_id: int) -> Holder | None:
        """The resource recorded as holding an adopted user."""
        data, _ = await self._read()
        return Holder.parse(data.get(f"{ADOPTED}{user_id}", ""))

    async def claim(self, user_id: int, resource: Resource,
                    alive: Callable[[Holder], Awaitable[bool]]) -> Holder | None:
        """Record ``resource`` as holding ``user_id``; returns the other live resource holding it instead
        (None when the claim is made or was already this resource's)."""
        mine = Holder.of(resource)
        refused: list[Holder] = []

        async def change(data: dict[str, str]) -> Mapping[str, str | None] | None:
            refused.clear()
            current = Holder.parse(data.get(f"{ADOPTED}{user_id}", ""))
            if current == mine:
                return None
            if current is not None and await alive(current):
                refused.append(current)
                return None
            return {f"{ADOPTED}{user_id}": mine.text, f"{RETAINED}{user_id}": None}

        await self._write(change)
        return refused[0] if refused else None

    async def release(self, user_id: int, resource: Resource, *, retain_since: datetime.datetime | None) -> None:
        """Drop the resource's hold on ``user_id``; with ``retain_since``, record the user as retained."""
        mine = Holder.of(resource)

        async def change(data: dict[str, str]) -> Mapping[str, str | None] | None:
            patch: dict[str, str | None] = {}
            if Holder.parse(data.get(f"{ADOPTED}{user_id}", "")) == mine:
                patch[f"{ADOPTED}{user_id}"] = None
            if retain_since is not None and f"{RETAINED}{user_id}" not in data:
                patch[f"{RETAINED}{user_id}"] = f"{mine.text} {format_time(retain_since)}"
            return patch or None

        await self._write(change)

    async def kept_users(self) -> set[int]:
        """Every user id the register holds, adopted or retained: the orphan sweep leaves them alone."""
        data, _ = await self._read()
        kept = set()
        for key in data:
            prefix, _, number = key.partition(".")
            if f"{prefix}." in (ADOPTED, RETAINED) and number.isdigit():
                kept.add(int(number))
        return kept
