"""The Kubernetes calls the operator makes itself (the resource, its status, Secrets), on the official client.

kopf watches and patches through its own client; writes that must land *before* the next step
(an OVH user id right after creating the user, the Secret) go through here, in the executor.
Errors never carry response bodies: a Secret's body holds credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, TypeVar, cast

import kubernetes
import urllib3
from kubernetes.client.exceptions import ApiException

from .errors import InvalidSpec, KubernetesAPIError
from .model import GROUP, PLURAL, VERSION, Resource

T = TypeVar("T")


class AlreadyExists(Exception):
    """The object to create exists already (HTTP 409)."""


class ResourceGone(Exception):
    """The custom resource itself no longer exists (HTTP 404)."""


class _Missing(Exception):
    """HTTP 404 (internal: each caller says what absence means)."""


def new_api_client() -> kubernetes.client.ApiClient:
    """In-cluster service account when running in a pod, else ``$KUBECONFIG`` / ``~/.kube/config``."""
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        configuration = kubernetes.client.Configuration()
        kubernetes.config.load_incluster_config(client_configuration=configuration)
        return kubernetes.client.ApiClient(configuration)
    return kubernetes.config.new_client_from_config(config_file=os.environ.get("KUBECONFIG"))


class KubeClient:
    def __init__(self, api_client: kubernetes.client.ApiClient, executor: Executor) -> None:
        self._api_client = api_client
        self._core = kubernetes.client.CoreV1Api(api_client)
        self._custom = kubernetes.client.CustomObjectsApi(api_client)
        self._executor = executor

    async def _run(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        call = functools.partial(fn, *args)
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, call)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise KubernetesAPIError(f"Cannot reach the Kubernetes API ({type(exc).__name__}) to {what}; "
                                     "retrying") from None
        except ApiException as exc:
            if exc.status == 404:
                raise _Missing(what) from None
            if exc.status == 409 and what.startswith("create"):
                raise AlreadyExists(what) from None
            raise KubernetesAPIError(
                f"The Kubernetes API answered {exc.status} {exc.reason or ''}".rstrip() + f" to {what}; retrying",
                status=exc.status,
            ) from None

    def _plain(self, obj: Any) -> dict[str, Any]:
        plain: dict[str, Any] = self._api_client.sanitize_for_serialization(obj)
        return plain

    # --- the custom resource ---------------------------------------------------------------------

    async def read_resource(self, resource: Resource) -> dict[str, Any] | None:
        try:
            body = await self._run(f"read {resource.key}", self._custom.get_namespaced_custom_object,
                                   GROUP, VERSION, resource.namespace, PLURAL, resource.name)
        except _Missing:
            return None
        return dict(cast(dict[str, Any], body))

    async def patch_status(self, resource: Resource, status: dict[str, Any]) -> dict[str, Any]:
        """Merge-patch ``.status`` of the custom resource (None values remove fields)."""
        try:
            patched = await self._run(
                f"patch status of {resource.key}", self._custom.patch_namespaced_custom_object_status,
                GROUP, VERSION, resource.namespace, PLURAL, resource.name, {"status": status},
            )
        except _Missing:
            raise ResourceGone(resource.key) from None
        return dict(cast(dict[str, Any], patched))

    # --- Secrets ---------------------------------------------------------------------------------

    async def read_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self._plain(await self._run(f"read Secret {namespace}/{name}",
                                               self._core.read_namespaced_secret, name, namespace))
        except _Missing:
            return None

    async def create_secret(self, namespace: str, body: dict[str, Any]) -> str:
        """Create a Secret; returns its resourceVersion."""
        name = body["metadata"]["name"]
        try:
            created = await self._run(f"create Secret {namespace}/{name}", self._core.create_namespaced_secret,
                                      namespace, body)
        except KubernetesAPIError as error:
            if error.status == 422:
                raise InvalidSpec(f"Kubernetes refused to create Secret {name}: check spec.secret.name") from None
            raise
        return str(self._plain(created)["metadata"]["resourceVersion"])

    async def patch_secret(self, namespace: str, name: str, patch: dict[str, Any]) -> str:
        """Patch a Secret; returns its new resourceVersion."""
        try:
            patched = await self._run(f"patch Secret {namespace}/{name}", self._core.patch_namespaced_secret,
                                      name, namespace, patch)
        except _Missing:
            raise KubernetesAPIError(f"Secret {namespace}/{name} was deleted while being updated; retrying") from None
        return str(self._plain(patched)["metadata"]["resourceVersion"])

    async def delete_secret(self, namespace: str, name: str) -> None:
        with contextlib.suppress(_Missing):
            await self._run(f"delete Secret {namespace}/{name}", self._core.delete_namespaced_secret, name, namespace)
