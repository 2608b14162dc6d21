"""The reads and writes of OVHObjectStorageUsers and Secrets that the demo and the tests make, on the
official kubernetes client (over HTTP, or in-process through :mod:`.kube.inprocess`)."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any, cast

import kubernetes
from kubernetes.client.exceptions import ApiException

from ovh_s3_operator.model import API_VERSION, GROUP, KIND, PLURAL, PROJECT_KIND, PROJECT_PLURAL, VERSION


class Objects:
    """Methods take an object name and an optional namespace (default: the one given here)."""

    def __init__(self, api: kubernetes.client.ApiClient, namespace: str = "default") -> None:
        self.api = api
        self.namespace = namespace
        self.core = kubernetes.client.CoreV1Api(api)
        self.custom = kubernetes.client.CustomObjectsApi(api)

    # --- OVHObjectStorageUsers --------------------------------------------------------------------

    def create(self, name: str, spec: Mapping[str, Any], namespace: str | None = None,
               **metadata: Any) -> dict[str, Any]:
        body = {"apiVersion": API_VERSION, "kind": KIND,
                "metadata": {"name": name, "namespace": namespace or self.namespace, **metadata}, "spec": dict(spec)}
        return self.create_body(body)

    def create_body(self, body: Mapping[str, Any]) -> dict[str, Any]:
        namespace = body["metadata"].get("namespace", self.namespace)
        return dict(cast(Mapping[str, Any], self.custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, dict(body))))

    def get(self, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        try:
            return dict(cast(Mapping[str, Any], self.custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace or self.namespace, PLURAL, name)))
        except ApiException as exc:
            if exc.status != 404:
                raise
            return None

    def patch(self, name: str, patch: Mapping[str, Any], namespace: str | None = None, *,
              status: bool = False) -> dict[str, Any]:
        """A merge patch of the resource (of its status subresource with ``status``)."""
        call = self.custom.patch_namespaced_custom_object_status if status else \
            self.custom.patch_namespaced_custom_object
        return dict(cast(Mapping[str, Any], call(GROUP, VERSION, namespace or self.namespace, PLURAL, name,
                                                 dict(patch))))

    def patch_spec(self, name: str, spec: Mapping[str, Any], namespace: str | None = None) -> dict[str, Any]:
        return self.patch(name, {"spec": dict(spec)}, namespace)

    def delete(self, name: str, namespace: str | None = None) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace or self.namespace, PLURAL, name)

    @staticmethod
    def ready(obj: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """The Ready condition of a resource, None if it has none."""
        for condition in (obj or {}).get("status", {}).get("conditions") or ():
            if condition.get("type") == "Ready":
                return dict(condition)
        return None

    def ready_for(self, name: str, status: str, reason: str | None = None, namespace: str | None = None,
                  generation: int | None = None) -> dict[str, Any] | None:
        """The resource if Ready has ``status`` (and ``reason``) for its current (or the given) generation."""
        obj = self.get(name, namespace)
        condition = self.ready(obj)
        if obj is None or condition is None or condition.get("status") != status:
            return None
        if reason is not None and condition.get("reason") != reason:
            return None
        wanted = generation if generation is not None else obj["metadata"].get("generation")
        return obj if condition.get("observedGeneration") == wanted else None

    # --- Secrets ----------------------------------------------------------------------------------

    def secret(self, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        try:
            raw = self.core.read_namespaced_secret(name, namespace or self.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            return None
        body: dict[str, Any] = self.api.sanitize_for_serialization(raw)
        return body

    def secret_values(self, name: str, namespace: str | None = None) -> dict[str, str] | None:
        body = self.secret(name, namespace)
        if body is None:
            return None
        return {key: base64.b64decode(value).decode() for key, value in (body.get("data") or {}).items()}

    # --- OVHProjects and their Secrets -------------------------------------------------------------

    def set_ovh_project(self, name: str, service_name: str, secret: str, endpoint: str | None = None,
                        **extra: Any) -> dict[str, Any]:
        """Create or replace an OVHProject (``extra``: more spec fields, e.g. credentialsSecretRef)."""
        spec: dict[str, Any] = {"serviceName": service_name, "credentialsSecretRef": {"name": secret}, **extra}
        if endpoint is not None:
            spec["endpoint"] = endpoint
        body: dict[str, Any] = {"apiVersion": API_VERSION, "kind": PROJECT_KIND, "metadata": {"name": name},
                                "spec": spec}
        existing = self.ovh_project(name)
        if existing is None:
            return dict(cast(Mapping[str, Any], self.custom.create_cluster_custom_object(
                GROUP, VERSION, PROJECT_PLURAL, body)))
        body["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
        return dict(cast(Mapping[str, Any], self.custom.replace_cluster_custom_object(
            GROUP, VERSION, PROJECT_PLURAL, name, body)))

    def ovh_project(self, name: str) -> dict[str, Any] | None:
        try:
            return dict(cast(Mapping[str, Any], self.custom.get_cluster_custom_object(
                GROUP, VERSION, PROJECT_PLURAL, name)))
        except ApiException as exc:
            if exc.status != 404:
                raise
            return None

    def delete_ovh_project(self, name: str) -> None:
        self.custom.delete_cluster_custom_object(GROUP, VERSION, PROJECT_PLURAL, name)

    def project_ready_for(self, name: str, status: str, reason: str | None = None) -> dict[str, Any] | None:
        """The OVHProject if its Ready condition has ``status`` (and ``reason``) for its generation."""
        obj = self.ovh_project(name)
        condition = self.ready(obj)
        if obj is None or condition is None or condition.get("status") != status:
            return None
        if reason is not None and condition.get("reason") != reason:
            return None
        return obj if condition.get("observedGeneration") == obj["metadata"].get("generation") else None

    def put_secret(self, name: str, namespace: str, values: Mapping[str, str]) -> dict[str, Any]:
        """Create or replace an Opaque Secret holding ``values`` (e.g. OVH credentials)."""
        body: Any = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace},
                     "type": "Opaque", "stringData": dict(values)}
        try:
            created = self.core.create_namespaced_secret(namespace, body)
        except ApiException as exc:
            if exc.status != 409:
                raise
            created = self.core.replace_namespaced_secret(name, namespace, body)
        result: dict[str, Any] = self.api.sanitize_for_serialization(created)
        return result
