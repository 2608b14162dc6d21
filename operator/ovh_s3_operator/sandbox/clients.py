"""The real ``kubernetes`` and ``ovh`` clients pointed at a sandbox, with the reads the demo and tests need."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any, cast

import kubernetes
import ovh
from kubernetes.client.exceptions import ApiException

from ..model import API_VERSION, GROUP, KIND, PLURAL, VERSION
from .stack import SandboxStack, wait_for


def _absent_on_404(exc: ApiException) -> None:
    if exc.status != 404:
        raise exc


class SandboxClients:
    """Methods take an object name and an optional namespace (default: the one given here)."""

    def __init__(self, stack: SandboxStack, namespace: str = "default") -> None:
        self.stack = stack
        self.namespace = namespace
        api = kubernetes.config.new_client_from_config(config_file=str(stack.kubeconfig))
        self.core = kubernetes.client.CoreV1Api(api)
        self.custom = kubernetes.client.CustomObjectsApi(api)
        endpoint = stack.ovh.url
        ovh.client.ENDPOINTS.setdefault(endpoint, endpoint)
        credentials = stack.ovh.credentials
        self.ovh = ovh.Client(endpoint=endpoint, application_key=credentials.application_key,
                              application_secret=credentials.application_secret,
                              consumer_key=credentials.consumer_key)
        self.project = f"/cloud/project/{stack.ovh.service_name}"

    # --- OVHObjectStorageUsers --------------------------------------------------------------------

    def create(self, name: str, spec: Mapping[str, Any], namespace: str | None = None) -> dict[str, Any]:
        body = {"apiVersion": API_VERSION, "kind": KIND,
                "metadata": {"name": name, "namespace": namespace or self.namespace}, "spec": dict(spec)}
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
            _absent_on_404(exc)
            return None

    def patch_spec(self, name: str, spec: Mapping[str, Any], namespace: str | None = None) -> dict[str, Any]:
        return dict(cast(Mapping[str, Any], self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace or self.namespace, PLURAL, name, {"spec": dict(spec)})))

    def delete(self, name: str, namespace: str | None = None) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace or self.namespace, PLURAL, name)

    @staticmethod
    def ready_condition(obj: Mapping[str, Any] | None) -> dict[str, Any] | None:
        for condition in (obj or {}).get("status", {}).get("conditions") or ():
            if condition.get("type") == "Ready":
                return dict(condition)
        return None

    def wait_condition(self, name: str, status: str, reason: str | None = None, *, namespace: str | None = None,
                       generation: int | None = None, timeout: float = 30.0) -> dict[str, Any]:
        """Wait until Ready has ``status`` (and ``reason``) for the object's (or the given) generation."""
        def check() -> dict[str, Any] | None:
            obj = self.get(name, namespace)
            condition = self.ready_condition(obj)
            if obj is None or condition is None or condition.get("status") != status:
                return None
            if reason is not None and condition.get("reason") != reason:
                return None
            wanted = generation if generation is not None else obj["metadata"].get("generation")
            return obj if condition.get("observedGeneration") == wanted else None

        result: dict[str, Any] = wait_for(check, timeout, what=f"{name} Ready={status} {reason or ''}")
        return result

    def wait_ready(self, name: str, **kwargs: Any) -> dict[str, Any]:
        return self.wait_condition(name, "True", "Reconciled", **kwargs)

    def wait_gone(self, name: str, namespace: str | None = None, timeout: float = 30.0) -> None:
        wait_for(lambda: self.get(name, namespace) is None, timeout, what=f"{name} to be deleted")

    # --- Secrets ----------------------------------------------------------------------------------

    def secret(self, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        try:
            raw = self.core.read_namespaced_secret(name, namespace or self.namespace)
        except ApiException as exc:
            _absent_on_404(exc)
            return None
        body: dict[str, Any] = self.core.api_client.sanitize_for_serialization(raw)
        return body

    def secret_values(self, name: str, namespace: str | None = None) -> dict[str, str] | None:
        body = self.secret(name, namespace)
        if body is None:
            return None
        return {key: base64.b64decode(value).decode() for key, value in (body.get("data") or {}).items()}
