"""The Kubernetes port: the calls the reconcile makes itself, and the events it posts, on the official client.

kopf only watches (:mod:`.handlers`); every write goes through here, in the executor, and lands
before the next step runs. Errors never carry response bodies: a Secret's body holds credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import json
import logging
import os
import socket
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from typing import Any, TypeVar, cast

import kubernetes
import urllib3
from kubernetes.client.exceptions import ApiException

from .access_policy import POLICY_PLURAL
from .errors import (
    InvalidSpec,
    KubeAlreadyExists,
    KubeConflict,
    KubeNotFound,
    KubernetesAPIError,
    ResourceGone,
)
from .model import GROUP, PLURAL, PROJECT_PLURAL, VERSION, micro_time_now

T = TypeVar("T")
logger = logging.getLogger(__name__)

COMPONENT = "ovh-s3-operator"
METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"


def new_api_client(kubeconfig: str | None = None) -> kubernetes.client.ApiClient:
    """In-cluster service account when running in a pod, else the kubeconfig (``$KUBECONFIG`` by default)."""
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        configuration = kubernetes.client.Configuration()
        kubernetes.config.load_incluster_config(client_configuration=configuration)
        return kubernetes.client.ApiClient(configuration)
    return kubernetes.config.new_client_from_config(config_file=kubeconfig or os.environ.get("KUBECONFIG"))


class KubeClient:
    """Implements :class:`.ports.Kube`."""

    def __init__(self, api_client: kubernetes.client.ApiClient, executor: Executor) -> None:
        self.api_client = api_client
        self._core = kubernetes.client.CoreV1Api(api_client)
        self._custom = kubernetes.client.CustomObjectsApi(api_client)
        self._coordination = kubernetes.client.CoordinationV1Api(api_client)
        self._executor = executor

    async def call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        call = functools.partial(fn, *args, **kwargs)
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, call)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise KubernetesAPIError(f"Cannot reach the Kubernetes API ({type(exc).__name__}) to {what}; "
                                     "retrying") from None
        except ApiException as exc:
            kind: type[KubernetesAPIError] = KubernetesAPIError
            if exc.status == 404:
                kind = KubeNotFound
            elif exc.status == 409:
                kind = KubeAlreadyExists if what.startswith("create") else KubeConflict
            message = f"The Kubernetes API answered {exc.status} {exc.reason or ''}".rstrip() + f" to {what}"
            raise kind(message + "; retrying", status=exc.status) from None

    async def _read(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any | None:
        """``call``, with None for a 404."""
        try:
            return await self.call(what, fn, *args, **kwargs)
        except KubeNotFound:
            return None

    def _plain(self, obj: Any) -> dict[str, Any]:
        plain: dict[str, Any] = self.api_client.sanitize_for_serialization(obj)
        return plain

    # --- the custom resource ---------------------------------------------------------------------

    async def read_resource(self, namespace: str, name: str) -> dict[str, Any] | None:
        body = await self._read(f"read {namespace}/{name}", self._custom.get_namespaced_custom_object,
                                GROUP, VERSION, namespace, PLURAL, name)
        return None if body is None else dict(body)

    async def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> dict[str, Any]:
        """Merge-patch ``.status`` (None values remove fields); ResourceGone if the resource is gone."""
        try:
            patched = await self.call(
                f"patch status of {namespace}/{name}", self._custom.patch_namespaced_custom_object_status,
                GROUP, VERSION, namespace, PLURAL, name, {"status": dict(status)},
            )
        except KubeNotFound:
            raise ResourceGone(f"{namespace}/{name}") from None
        return dict(cast(dict[str, Any], patched))

    async def set_finalizers(self, namespace: str, name: str, finalizers: list[str],
                             resource_version: str) -> dict[str, Any]:
        """Replace ``metadata.finalizers`` if the resource is still at ``resource_version`` (else
        KubeConflict); ResourceGone if it is gone."""
        patch = {"metadata": {"finalizers": finalizers or None, "resourceVersion": resource_version}}
        try:
            patched = await self.call(f"update the finalizers of {namespace}/{name}",
                                      self._custom.patch_namespaced_custom_object,
                                      GROUP, VERSION, namespace, PLURAL, name, patch)
        except KubeNotFound:
            raise ResourceGone(f"{namespace}/{name}") from None
        return dict(cast(dict[str, Any], patched))

    async def list_resources(self, namespace: str | None = None) -> list[dict[str, Any]]:
        if namespace is None:
            listing = await self.call("list the resources", self._custom.list_cluster_custom_object,
                                      GROUP, VERSION, PLURAL)
        else:
            listing = await self.call(f"list the resources of {namespace}",
                                      self._custom.list_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL)
        return list(cast(dict[str, Any], listing).get("items") or [])

    # --- Secrets ---------------------------------------------------------------------------------

    async def read_secret_metadata(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Secret's metadata only (PartialObjectMetadata): who owns it, never its data."""
        response = await self._read(
            f"read the metadata of Secret {namespace}/{name}", self._core.read_namespaced_secret, name, namespace,
            _headers={"Accept": METADATA_ONLY}, _preload_content=False)
        return None if response is None else dict(json.loads(response.data))

    async def read_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        secret = await self._read(f"read Secret {namespace}/{name}", self._core.read_namespaced_secret, name, namespace)
        return None if secret is None else self._plain(secret)

    async def create_secret(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create a Secret; returns it as created. KubeAlreadyExists if the name is taken."""
        name = body["metadata"]["name"]
        try:
            created = await self.call(f"create Secret {namespace}/{name}", self._core.create_namespaced_secret,
                                      namespace, body)
        except KubernetesAPIError as error:
            if error.status == 422:
                raise InvalidSpec(f"Kubernetes refused to create Secret {name}: check spec.secret") from None
            raise
        return self._plain(created)

    async def patch_secret(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        """Merge-patch a Secret; returns it as patched (with changes others made meanwhile)."""
        try:
            patched = await self.call(f"patch Secret {namespace}/{name}", self._core.patch_namespaced_secret,
                                      name, namespace, patch)
        except KubeNotFound:
            raise KubernetesAPIError(f"Secret {namespace}/{name} was deleted while being updated; retrying") from None
        return self._plain(patched)

    async def delete_secret(self, namespace: str, name: str, uid: str) -> None:
        """Delete the Secret if it is still the object with ``uid`` (never a namesake created since)."""
        options = {"preconditions": {"uid": uid}}
        with contextlib.suppress(KubeNotFound, KubeConflict):
            await self.call(f"delete Secret {namespace}/{name}", self._core.delete_namespaced_secret,
                            name, namespace, body=options)

    # --- the register of adopted and retained OVH users (a ConfigMap in the operator's namespace) -------

    async def read_config_map(self, namespace: str, name: str) -> dict[str, Any] | None:
        config_map = await self._read(f"read ConfigMap {namespace}/{name}", self._core.read_namespaced_config_map,
                                      name, namespace)
        return None if config_map is None else self._plain(config_map)

    async def create_config_map(self, namespace: str, body: dict[str, Any]) -> None:
        """KubeAlreadyExists if it exists (someone created it meanwhile)."""
        await self.call(f"create ConfigMap {namespace}/{body['metadata']['name']}",
                        self._core.create_namespaced_config_map, namespace, body)

    async def patch_config_map(self, namespace: str, name: str, data: Mapping[str, str | None],
                               resource_version: str) -> None:
        """Merge ``data`` into it (None removes a key) if it is still at ``resource_version``, else KubeConflict."""
        patch = {"metadata": {"resourceVersion": resource_version}, "data": dict(data)}
        try:
            await self.call(f"update ConfigMap {namespace}/{name}", self._core.patch_namespaced_config_map,
                            name, namespace, patch)
        except KubeNotFound:
            raise KubeConflict(f"ConfigMap {namespace}/{name} was deleted meanwhile; retrying") from None

    # --- what the access policies need -------------------------------------------------------------

    async def list_access_policies(self) -> list[dict[str, Any]]:
        listing = await self.call("list the access policies", self._custom.list_cluster_custom_object,
                                  GROUP, VERSION, POLICY_PLURAL)
        return list(cast(dict[str, Any], listing).get("items") or [])

    async def list_namespaces(self) -> list[dict[str, Any]]:
        listing = await self.call("list the namespaces", self._core.list_namespace)
        return [self._plain(namespace) for namespace in listing.items]

    # --- OVHProjects -------------------------------------------------------------------------------

    async def list_projects(self) -> list[dict[str, Any]]:
        listing = await self.call("list the OVHProjects", self._custom.list_cluster_custom_object,
                                  GROUP, VERSION, PROJECT_PLURAL)
        return list(cast(dict[str, Any], listing).get("items") or [])

    async def patch_project_status(self, name: str, status: Mapping[str, Any]) -> dict[str, Any] | None:
        """Merge-patch an OVHProject's ``.status``; None if it is gone."""
        try:
            patched = await self.call(f"patch status of OVHProject {name}",
                                      self._custom.patch_cluster_custom_object_status, GROUP, VERSION,
                                      PROJECT_PLURAL, name, {"status": dict(status)})
        except KubeNotFound:
            return None
        return dict(cast(dict[str, Any], patched))

    # --- the leader's Lease ------------------------------------------------------------------------

    async def read_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        lease = await self._read(f"read Lease {namespace}/{name}", self._coordination.read_namespaced_lease,
                                 name, namespace)
        return None if lease is None else self._plain(lease)

    async def create_lease(self, namespace: str, body: dict[str, Any]) -> None:
        await self.call(f"create Lease {namespace}/{body['metadata']['name']}",
                        self._coordination.create_namespaced_lease, namespace, body)

    async def replace_lease(self, namespace: str, name: str, body: dict[str, Any]) -> None:
        await self.call(f"update Lease {namespace}/{name}", self._coordination.replace_namespaced_lease,
                        name, namespace, body)

    # --- namespaces ------------------------------------------------------------------------------

    async def namespace_uid(self, name: str) -> str | None:
        try:
            namespace = await self.call(f"read namespace {name}", self._core.read_namespace, name)
        except KubeNotFound:
            return None
        return str(namespace.metadata.uid) if namespace.metadata else None



class EventRecorder:
    """Posts Kubernetes events in the background (implements :class:`.ports.Events`).

    Events come from ``ovh-s3-operator`` on events.k8s.io/v1 (core/v1 where the server lacks it).
    Posting is best effort: a failure is logged at DEBUG and never delays nor fails a reconcile.
    """

    def __init__(self, kube: KubeClient, *, capacity: int = 10000) -> None:
        self._kube = kube
        self._events_v1 = kubernetes.client.EventsV1Api(kube.api_client)
        self._core = kubernetes.client.CoreV1Api(kube.api_client)
        self._queue: asyncio.Queue[tuple[Mapping[str, Any], str, str, bool]] = asyncio.Queue(capacity)
        self._task: asyncio.Task[None] | None = None
        self._use_core = False
        self._instance = os.environ.get("POD_NAME") or socket.gethostname()

    def post(self, regarding: Mapping[str, Any], reason: str, message: str, *, warning: bool = False) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait((regarding, reason, message, warning))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name="event recorder")

    async def flush(self) -> None:
        """Wait until every event posted so far has been sent (or failed)."""
        await self._queue.join()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _drain(self) -> None:
        while not self._queue.empty():
            regarding, reason, message, warning = await self._queue.get()
            try:
                await self._send(regarding, reason, message, warning)
            except Exception as exc:  # events are best effort
                logger.debug("Could not post event %s: %s", reason, exc)
            finally:
                self._queue.task_done()

    async def _send(self, regarding: Mapping[str, Any], reason: str, message: str, warning: bool) -> None:
        namespace = regarding.get("namespace") or "default"
        kind = "Warning" if warning else "Normal"
        meta = {"generateName": f"{regarding.get('name', 'object')}.", "namespace": namespace}
        if not self._use_core:
            body = {"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": meta, "eventTime": micro_time_now(),
                    "reportingController": COMPONENT, "reportingInstance": self._instance[:128],
                    "action": reason, "reason": reason, "note": message[:1024], "type": kind,
                    "regarding": dict(regarding)}
            try:
                await self._kube.call("post an event", self._events_v1.create_namespaced_event, namespace, body)
                return
            except KubeNotFound:
                self._use_core = True  # the server has no events.k8s.io/v1
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        core = {"apiVersion": "v1", "kind": "Event", "metadata": meta, "involvedObject": dict(regarding),
                "reason": reason, "message": message[:1024], "type": kind, "firstTimestamp": now,
                "lastTimestamp": now, "count": 1, "source": {"component": COMPONENT},
                "reportingComponent": COMPONENT, "reportingInstance": self._instance[:128]}
        await self._kube.call("post an event", self._core.create_namespaced_event, namespace, core)
