"""The operator in this process, against the emulator and the OVH model, without a socket.

Everything but kopf is the production code: :class:`ovh_s3_operator.app.App` with its controller,
reconcile, OVH port (over python-ovh) and Kubernetes port (over the official client). What kopf
does in production — watch, and hand each event to the controller — is done by in-process
subscriptions to the emulator. The kubernetes client reaches the emulator through
:mod:`.kube.inprocess`, python-ovh reaches the OVH sandbox through its in-process session.
A reconcile takes about a millisecond, so the fast tests of the operator's behaviour run here.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar, cast

from kubernetes.client.exceptions import ApiException

from ovh_s3_operator.access_policy import POLICY_PLURAL
from ovh_s3_operator.app import App
from ovh_s3_operator.config import Settings
from ovh_s3_operator.manifests import crd_documents
from ovh_s3_operator.model import API_VERSION, GROUP, MANAGED_BY_LABEL, PLURAL, PROJECT_PLURAL, VERSION
from ovh_s3_operator.ovh_api import ACCESS_RULES
from ovh_s3_operator.secret_writer import MANAGED_BY

from .kube.inprocess import api_client
from .kube.server import KubeEmulator
from .kube.store import Watcher
from .objects import Objects
from .ovh.server import OVHSandbox
from .policies import ALLOW_EVERYTHING
from .stack import OPERATOR_NAMESPACE, install_operator_rbac

T = TypeVar("T")

FAST_SETTINGS: dict[str, Any] = {
    "retry_delay": 0.05,
    "conflict_retry_delay": 0.1,
    "permanent_retry_delay": 0.5,
    "user_poll_interval": 0.02,
    "ovh_backoff_base": 0.001,
    "ovh_backoff_max": 0.01,
    "ovh_consistency_delay": 0.3,
    "ovh_request_timeout": 1.0,
    "ovh_requests_per_second": 1000.0,
    "ovh_burst": 1000,
    "drift_interval": 0.0,
    "metrics_port": 0,
    "rotation_request_interval": 0.0,
}


async def until(predicate: Callable[[], Awaitable[T | None] | T | None], timeout: float = 5.0,
                what: str = "condition", interval: float = 0.005) -> T:
    """Poll ``predicate`` (plain or async) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return cast(T, result)
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(interval)


class InProcessOperator(Objects):
    """An emulator, an OVH sandbox and the operator, in this process. Use as an async context manager."""

    def __init__(self, *, kube: KubeEmulator | None = None, ovh: OVHSandbox | None = None,
                 namespace: str = "default", access: Mapping[str, Mapping[str, Any]] | None = None,
                 **settings: Any) -> None:
        """``access``: the access policies to create, by name (default: one that allows everything
        everywhere, so that tests about something else need not care)."""
        if kube is None:
            kube = KubeEmulator()
            for crd in crd_documents():
                kube.install_crd(crd)
        self.kube = kube
        self.ovh = ovh if ovh is not None else OVHSandbox(activation=0.05, deletion=0.02, access_rules=ACCESS_RULES)
        self.kube.create_namespace(namespace)
        # The operator calls the API as its ServiceAccount, with the install's RBAC
        # (deploy/kustomize/base/rbac.yaml); the test's own clients are the admin's.
        self.operator_api = api_client(self.kube, token=install_operator_rbac(self.kube))
        super().__init__(api_client(self.kube), namespace)
        self.settings_overrides = {**FAST_SETTINGS, **settings}
        for name, spec in (ALLOW_EVERYTHING if access is None else access).items():
            self.set_access_policy(name, spec)
        self.app: App | None = None
        self._feeds: list[tuple[Watcher, asyncio.Task[None]]] = []

    def settings(self, **overrides: Any) -> Settings:
        credentials = self.ovh.credentials
        values = {
            "ovh_endpoint": self.ovh.url,
            "ovh_application_key": credentials.application_key,
            "ovh_application_secret": credentials.application_secret,
            "ovh_consumer_key": credentials.consumer_key,
            "ovh_service_name": self.ovh.service_name,
            "operator_namespace": OPERATOR_NAMESPACE,
            **self.settings_overrides,
            **overrides,
        }
        return Settings(_env_file=None, **values)

    def add_ovh_project(self, name: str, account: OVHSandbox | None = None, *, service_name: str | None = None,
                        oauth2: bool = False, secret: str | None = None) -> dict[str, str]:
        """An OVHProject for a project of ``account`` (default: :attr:`ovh`; ``service_name`` default: its
        first project), with its credentials in a Secret of the operator's namespace: a new consumer key
        for that project only, or a new OAuth2 service account. Returns the Secret's values."""
        account = account or self.ovh
        service_name = service_name or account.service_name
        if oauth2:
            client = account.add_oauth2_client(ACCESS_RULES, service_name)
            values = {"OVH_CLIENT_ID": client.client_id, "OVH_CLIENT_SECRET": client.client_secret}
        else:
            keys = account.add_consumer_key(ACCESS_RULES, service_name)
            values = {"OVH_APPLICATION_KEY": keys.application_key, "OVH_APPLICATION_SECRET": keys.application_secret,
                      "OVH_CONSUMER_KEY": keys.consumer_key}
        secret = secret or f"{name}-ovh"
        self.put_secret(secret, OPERATOR_NAMESPACE, values)
        self.set_ovh_project(name, service_name, secret, account.url)
        return values

    async def __aenter__(self) -> InProcessOperator:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    async def start(self, **overrides: Any) -> App:
        """Start (or start again: a restart loses the operator's memory, as a new process would)."""
        self.app = await App.start(self.settings(**overrides), api_client=self.operator_api,
                                   ovh_session=self.ovh.session())
        controller = self.app.controller
        self._subscribe(API_VERSION, PLURAL, None, controller.resource_event)
        self._subscribe(API_VERSION, POLICY_PLURAL, None, functools.partial(controller.access_event, "policy"))
        self._subscribe("v1", "namespaces", None, functools.partial(controller.access_event, "namespace"))
        self._subscribe("v1", "secrets", f"{MANAGED_BY_LABEL}={MANAGED_BY}", controller.secret_event)
        self._subscribe(API_VERSION, PROJECT_PLURAL, None, self.app.projects.event)
        return self.app

    def _subscribe(self, api_version: str, plural: str, labels: str | None,
                   handler: Callable[[str | None, Mapping[str, Any]], None]) -> None:
        loop = asyncio.get_running_loop()
        watcher, initial = self.kube.subscribe(api_version, plural, loop, label_selector=labels)

        async def feed() -> None:
            for _, obj in initial:
                handler(None, obj)  # as kopf delivers what it lists when a watch starts
            while True:
                await watcher.wakeup.wait()
                watcher.wakeup.clear()
                while watcher.pending:
                    event_type, obj = watcher.pending.popleft()
                    handler(event_type, obj)

        self._feeds.append((watcher, asyncio.create_task(feed(), name=f"feed {plural}")))

    async def stop(self) -> None:
        for watcher, task in self._feeds:
            task.cancel()
            self.kube.unsubscribe(watcher)
        self._feeds = []
        if self.app is not None:
            await self.app.events.flush()
            await self.app.close()
            self.app = None

    async def restart(self, **overrides: Any) -> App:
        await self.stop()
        return await self.start(**overrides)

    # --- access policies and namespaces -----------------------------------------------------------

    def set_access_policy(self, name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
        """Create or replace an OVHObjectStorageAccessPolicy."""
        metadata: dict[str, Any] = {"name": name}
        body = {"apiVersion": API_VERSION, "kind": "OVHObjectStorageAccessPolicy", "metadata": metadata,
                "spec": dict(spec)}
        try:
            existing = cast(Mapping[str, Any], self.custom.get_cluster_custom_object(
                GROUP, VERSION, POLICY_PLURAL, name))
        except ApiException as exc:
            if exc.status != 404:
                raise
            return dict(cast(Mapping[str, Any], self.custom.create_cluster_custom_object(
                GROUP, VERSION, POLICY_PLURAL, body)))
        metadata["resourceVersion"] = existing["metadata"]["resourceVersion"]
        return dict(cast(Mapping[str, Any], self.custom.replace_cluster_custom_object(
            GROUP, VERSION, POLICY_PLURAL, name, body)))

    def label_namespace(self, name: str, **labels: str) -> None:
        """Create a namespace, or set its labels."""
        self.kube.create_namespace(name)
        if labels:
            self.core.patch_namespace(name, {"metadata": {"labels": labels}})

    # --- waits -----------------------------------------------------------------------------------

    async def wait_condition(self, name: str, status: str, reason: str | None = None, *,
                             namespace: str | None = None, timeout: float = 5.0) -> dict[str, Any]:
        """Wait until Ready has ``status`` (and ``reason``) for the object's current generation."""
        return await until(lambda: self.ready_for(name, status, reason, namespace), timeout,
                           what=f"{name} Ready={status} {reason or ''}")

    async def wait_ready(self, name: str, **kwargs: Any) -> dict[str, Any]:
        return await self.wait_condition(name, "True", "Reconciled", **kwargs)

    async def wait_project(self, name: str, status: str, reason: str | None = None, *,
                           timeout: float = 5.0) -> dict[str, Any]:
        """Wait until the OVHProject's Ready has ``status`` (and ``reason``) for its current generation."""
        return await until(lambda: self.project_ready_for(name, status, reason), timeout,
                           what=f"OVHProject {name} Ready={status} {reason or ''}")

    async def wait_gone(self, name: str, namespace: str | None = None, timeout: float = 5.0) -> None:
        await until(lambda: self.get(name, namespace) is None, timeout, what=f"{name} to be deleted")

    async def settle(self, timeout: float = 5.0) -> None:
        """Wait until the controller has nothing queued or running."""
        assert self.app is not None
        controller = self.app.controller
        await until(lambda: controller.idle, timeout, what="the controller to be idle")

    # --- events --------------------------------------------------------------------------------

    async def events(self, namespace: str | None = None) -> list[dict[str, Any]]:
        """The events the operator posted (as core/v1 shows them)."""
        if self.app is not None:
            await self.app.events.flush()
        return self.kube.list_objects("v1", "events", namespace or self.namespace)

    async def event_reasons(self, namespace: str | None = None) -> list[str]:
        return [event["reason"] for event in await self.events(namespace)]

    async def wait_events(self, *reasons: str, namespace: str | None = None, timeout: float = 5.0) -> list[str]:
        """Wait until the operator has posted events with all these reasons; returns every reason."""
        async def posted() -> list[str] | None:
            seen = await self.event_reasons(namespace)
            return seen if set(reasons) <= set(seen) else None

        return await until(posted, timeout, what=f"events {', '.join(reasons)}")
