"""The register of OVH users the operator holds or let go without its marker saying so.

The marker in an OVH user's description (:class:`.model.Marker`) proves which resource created a
user. Two cases need a record the marker cannot give, and that no tenant can forge:

* **adopted** users (``spec.userId``): a user the operator did not create carries no marker (OVH cannot
  change a description), so which resource holds it is recorded here; two resources never hold the
  same user, and a new resource cannot take a user over from a live one;
* **retained** users (``deletionPolicy: Retain``): the resource is gone but its user is meant to stay,
  so the orphan sweep (:mod:`.orphans`) must leave it alone.

An adopted user may have S3 keys of other systems: the register also records the keys the operator
issued for it (``keys.<user id>``), and, while a key creation is in flight, the keys the user had
before (``creating.<user id>``), so that a key whose creation answer was lost is still known to be
the operator's. The operator deletes no key of an adopted user that the register does not list.

The register is one ConfigMap, ``ovh-s3-operator-users``, in the operator's own namespace, where
tenants cannot write. Keys are ``adopted.<project>.<user id>``, ``keys.…``, ``creating.…`` and
``retained.…`` (``<project>`` is the OVH project id: user ids are per project); ``adopted`` and
``retained`` values name the resource,
``<namespace>/<name>/<uid>``, the others list access key ids. Every write carries the resourceVersion
it was computed from (optimistic concurrency), so two resources, or two replicas, racing for one user
cannot both win. The orphan sweep drops the retained entries of users OVH no longer has. At about 150
bytes an adopted or retained user, the ConfigMap's 1 MiB holds some 6,000 users.
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
KEYS = "keys."
CREATING = "creating."
PREFIXES = (ADOPTED, RETAINED, KEYS, CREATING)
ATTEMPTS = 5


@dataclass(frozen=True)
class Entry:
    """What the register says about one user."""

    holder: Holder | None = None
    issued: frozenset[str] = frozenset()
    """Keys the operator issued for the adopted user (not deleted since)."""
    before_creation: frozenset[str] | None = None
    """The user's keys before a key creation whose answer has not been recorded (None: none in flight)."""
    retained: bool = False


def _keys(text: str | None) -> frozenset[str]:
    return frozenset((text or "").split())


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
    """Reads and writes the register through the Kubernetes port, for the users of one OVH project
    (``scope``: its id; user ids are per project) or, unscoped, of the operator's only project."""

    def __init__(self, kube: Kube, namespace: str, scope: str = "") -> None:
        self._kube = kube
        self.namespace = namespace
        self.scope = scope

    def scoped(self, scope: str) -> Registry:
        """The register of the users of OVH project ``scope``."""
        return Registry(self._kube, self.namespace, scope)

    def _key(self, prefix: str, user_id: int) -> str:
        return f"{prefix}{self.scope}.{user_id}" if self.scope else f"{prefix}{user_id}"

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

    async def entry(self, user_id: int) -> Entry:
        data, _ = await self._read()
        return self._entry(data, user_id)

    def _entry(self, data: Mapping[str, str], user_id: int) -> Entry:
        creating = data.get(self._key(CREATING, user_id))
        return Entry(holder=Holder.parse(data.get(self._key(ADOPTED, user_id), "")),
                     issued=_keys(data.get(self._key(KEYS, user_id))),
                     before_creation=None if creating is None else _keys(creating),
                     retained=self._key(RETAINED, user_id) in data)

    async def _change_keys(self, user_id: int, resource: Resource, *, add: frozenset[str] = frozenset(),
                           remove: frozenset[str] = frozenset(), before_creation: frozenset[str] | None = None,
                           created: bool = False) -> None:
        """Update the keys recorded for a user this resource holds (nothing if it does not hold it)."""
        mine = Holder.of(resource)

        async def change(data: dict[str, str]) -> Mapping[str, str | None] | None:
            if Holder.parse(data.get(self._key(ADOPTED, user_id), "")) != mine:
                return None
            issued = (_keys(data.get(self._key(KEYS, user_id))) | add) - remove
            patch: dict[str, str | None] = {self._key(KEYS, user_id): " ".join(sorted(issued)) or None}
            if before_creation is not None:
                patch[self._key(CREATING, user_id)] = " ".join(sorted(before_creation))
            elif created:
                patch[self._key(CREATING, user_id)] = None
            return {k: v for k, v in patch.items() if data.get(k) != v}

        await self._write(change)

    async def creating_key(self, user_id: int, resource: Resource, existing: frozenset[str]) -> None:
        """A key is about to be created for the adopted user, which has ``existing`` keys now."""
        await self._change_keys(user_id, resource, before_creation=existing)

    async def issued(self, user_id: int, resource: Resource, keys: frozenset[str]) -> None:
        """The operator issued ``keys`` for the adopted user (the creation in flight, if any, is over)."""
        await self._change_keys(user_id, resource, add=keys, created=True)

    async def deleted(self, user_id: int, resource: Resource, keys: frozenset[str]) -> None:
        await self._change_keys(user_id, resource, remove=keys)

    async def claim(self, user_id: int, resource: Resource,
                    alive: Callable[[Holder], Awaitable[bool]]) -> Holder | None:
        """Record ``resource`` as holding ``user_id``; returns the other live resource holding it instead
        (None when the claim is made or was already this resource's)."""
        mine = Holder.of(resource)
        refused: list[Holder] = []

        async def change(data: dict[str, str]) -> Mapping[str, str | None] | None:
            refused.clear()
            current = Holder.parse(data.get(self._key(ADOPTED, user_id), ""))
            if current == mine:
                return None
            if current is not None and await alive(current):
                refused.append(current)
                return None
            return {self._key(ADOPTED, user_id): mine.text,
                    **{self._key(prefix, user_id): None for prefix in (RETAINED, KEYS, CREATING)}}

        await self._write(change)
        return refused[0] if refused else None

    async def release(self, user_id: int, holder: Resource | Holder, *,
                      retain_since: datetime.datetime | None) -> None:
        """Drop the resource's hold on ``user_id``; with ``retain_since``, record the user as retained."""
        mine = holder if isinstance(holder, Holder) else Holder.of(holder)

        async def change(data: dict[str, str]) -> Mapping[str, str | None] | None:
            patch: dict[str, str | None] = {}
            holder = Holder.parse(data.get(self._key(ADOPTED, user_id), ""))
            if holder is not None and holder != mine:
                return None  # another resource holds the user now: nothing of ours to drop or retain
            if holder == mine:
                patch.update({self._key(prefix, user_id): None for prefix in (ADOPTED, KEYS, CREATING)
                              if self._key(prefix, user_id) in data})
            if retain_since is not None and self._key(RETAINED, user_id) not in data:
                patch[self._key(RETAINED, user_id)] = f"{mine.text} {format_time(retain_since)}"
            return patch or None

        await self._write(change)

    async def holds_any(self, resource: Resource) -> bool:
        """Whether the resource holds an adopted user in any project: the register says so, not status."""
        data, _ = await self._read()
        mine = Holder.of(resource)
        return any(key.startswith(ADOPTED) and Holder.parse(value) == mine for key, value in data.items())

    async def adopted(self) -> dict[int, Entry]:
        """The adopted users of this scope and what the register says of each."""
        data, _ = await self._read()
        return {user_id: self._entry(data, user_id) for user_id, prefix in self._entries(data) if prefix == ADOPTED}

    async def kept_users(self) -> set[int]:
        """Every user id the register holds, adopted or retained: the orphan sweep leaves them alone."""
        data, _ = await self._read()
        return {user_id for user_id, prefix in self._entries(data) if prefix in (ADOPTED, RETAINED)}

    async def forget_missing(self, existing: set[int]) -> None:
        """Drop the retained entries of users OVH no longer has (an adopted user's entries go when its
        resource does)."""
        async def change(data: dict[str, str]) -> Mapping[str, str | None] | None:
            gone = {self._key(prefix, user_id): None for user_id, prefix in self._entries(data)
                    if prefix == RETAINED and user_id not in existing}
            return gone or None

        await self._write(change)

    def _entries(self, data: Mapping[str, str]) -> list[tuple[int, str]]:
        """(user id, prefix) of this scope's entries."""
        found = []
        for prefix in PREFIXES:
            head = self._key(prefix, 0).removesuffix("0")
            found += [(int(key[len(head):]), prefix) for key in data
                      if key.startswith(head) and key[len(head):].isdigit()]
        return found
