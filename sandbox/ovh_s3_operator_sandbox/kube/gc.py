"""The garbage collector, as kube-controller-manager's (``pkg/controller/garbagecollector``).

It runs beside the API, never inside a request: a worker thread acts on ownerReferences a short
``delay`` after the writes that concern them (the real collector reacts to its informers' events).

- A dependent none of whose owners exists (by uid) is deleted (Background); one that still has an
  owner only loses its dangling references (``attemptToDeleteItem``).
- ``propagationPolicy: Orphan``: the API server gives the owner the ``orphan`` finalizer; the
  collector removes the owner's references from its dependents, then the finalizer (the owner goes
  once its other finalizers are gone; the dependents stay either way).
- ``propagationPolicy: Foreground``: the owner gets the ``foregroundDeletion`` finalizer and stays
  while dependents with ``blockOwnerDeletion: true`` exist; the collector deletes the dependents and
  removes the finalizer once no blocking one is left.
- ``Background`` (the default): the owner goes at once, the dependents after it.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ovh_s3_operator_sandbox.kube.model import ApiError, Obj, ResourceType

if TYPE_CHECKING:
    from ovh_s3_operator_sandbox.kube.store import Change, ObjectRef, Store

logger = logging.getLogger(__name__)

ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"


def _meta(obj: Obj) -> dict[str, Any]:
    meta: dict[str, Any] = obj["metadata"]
    return meta


class GarbageCollector:
    def __init__(self, store: Store, delay: float = 0.05) -> None:
        self._store = store
        self.delay = delay
        self._queue: list[tuple[float, int, tuple[str, Any]]] = []
        self._counter = itertools.count()
        self._condition = threading.Condition()
        self._worker: threading.Thread | None = None
        self._held = 0

    # ------------------------------------------------------------------------------- scheduling

    def observe(self, rt: ResourceType, change: Change) -> None:
        """A store listener: what a committed write gives the collector to do."""
        meta = _meta(change.obj)
        ref: ObjectRef = (rt.key, meta.get("namespace") or "", meta["name"])
        if change.type == "DELETED":
            self._schedule(("owner-gone", meta["uid"]))
            for owner in meta.get("ownerReferences") or ():
                self._schedule(("owner-waits", owner.get("uid")))
            return
        if meta.get("ownerReferences"):
            self._schedule(("check", ref))
        if meta.get("deletionTimestamp") and {ORPHAN, FOREGROUND} & set(meta.get("finalizers") or ()):
            self._schedule(("finalize", ref))

    def _schedule(self, item: tuple[str, Any]) -> None:
        with self._condition:
            heapq.heappush(self._queue, (time.monotonic() + self.delay, next(self._counter), item))
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._run, name="kube-gc", daemon=True)
                self._worker.start()
            self._condition.notify()

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Collect nothing meanwhile (for tests that look between a deletion and its collection)."""
        with self._condition:
            self._held += 1
        try:
            yield
        finally:
            with self._condition:
                self._held -= 1
                self._condition.notify()

    def _run(self) -> None:
        """Work until the queue stays empty for a second (a new item starts a new worker)."""
        while True:
            with self._condition:
                if not self._queue:
                    self._condition.wait(1.0)
                    if not self._queue:
                        self._worker = None
                        return
                due, _, item = self._queue[0]
                wait = due - time.monotonic()
                if wait > 0 or self._held:
                    self._condition.wait(wait if wait > 0 else 0.05)
                    continue
                heapq.heappop(self._queue)
            try:
                with self._store.lock:
                    self._process(item)
            except Exception:
                logger.exception("The garbage collector failed on %s", item)

    # ------------------------------------------------------------------------------- the work

    def _process(self, item: tuple[str, Any]) -> None:
        kind, target = item
        store = self._store
        if kind == "owner-gone":
            for ref in store.dependents_of(target):
                self._check(ref)
        elif kind == "owner-waits":
            owner_ref = store.ref_of(target)
            if owner_ref is not None:
                self._finalize(owner_ref)
        elif kind == "check":
            self._check(target)
        elif kind == "finalize":
            self._finalize(target)

    def _check(self, ref: ObjectRef) -> None:
        store = self._store
        obj = store.lookup(ref)
        if obj is None:
            return
        owners = list(_meta(obj).get("ownerReferences") or ())
        alive = [owner for owner in owners if store.ref_of(owner.get("uid")) is not None]
        rt = store.type_of(ref)
        if not alive:
            if not _meta(obj).get("deletionTimestamp"):
                store.delete(rt, ref[1] or None, ref[2])
        elif len(alive) < len(owners):
            self._update(rt, ref, lambda o: _set_owners(o, alive))

    def _finalize(self, ref: ObjectRef) -> None:
        store = self._store
        owner = store.lookup(ref)
        if owner is None:
            return
        meta = _meta(owner)
        finalizers = list(meta.get("finalizers") or ())
        uid = meta["uid"]
        if not meta.get("deletionTimestamp"):
            return
        if ORPHAN in finalizers:
            for dependent in store.dependents_of(uid):
                obj = store.lookup(dependent)
                if obj is not None:
                    kept = [o for o in _meta(obj).get("ownerReferences") or () if o.get("uid") != uid]
                    self._update(store.type_of(dependent), dependent, lambda o, kept=kept: _set_owners(o, kept))
            self._update(store.type_of(ref), ref, lambda o: _drop_finalizer(o, ORPHAN))
        elif FOREGROUND in finalizers:
            for dependent in store.dependents_of(uid):
                obj = store.lookup(dependent)
                if obj is None:
                    continue
                if not _meta(obj).get("deletionTimestamp"):
                    store.delete(store.type_of(dependent), dependent[1] or None, dependent[2],
                                 propagation="Foreground")
            still = any(store.lookup(dependent) is not None and any(
                o.get("uid") == uid and o.get("blockOwnerDeletion")
                for o in _meta(store.lookup(dependent) or {"metadata": {}}).get("ownerReferences") or ())
                for dependent in store.dependents_of(uid))
            if not still:
                self._update(store.type_of(ref), ref, lambda o: _drop_finalizer(o, FOREGROUND))

    def _update(self, rt: ResourceType, ref: ObjectRef, change: Any) -> None:
        try:
            self._store.update(rt, ref[1] or None, ref[2], change)
        except ApiError as exc:  # e.g. invalid under a newer schema, or gone meanwhile: left as is
            logger.debug("The garbage collector could not update %s: %s", ref, exc.message)


def _set_owners(obj: Obj, owners: list[Any]) -> Obj:
    if owners:
        _meta(obj)["ownerReferences"] = owners
    else:
        _meta(obj).pop("ownerReferences", None)
    return obj


def _drop_finalizer(obj: Obj, finalizer: str) -> Obj:
    kept = [f for f in _meta(obj).get("finalizers") or () if f != finalizer]
    if kept:
        _meta(obj)["finalizers"] = kept
    else:
        _meta(obj).pop("finalizers", None)
    return obj
