"""Wiring: builds the clients, the reconcile's context and the controller from the settings."""

from __future__ import annotations

import logging
import os
import socket
import urllib.parse
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

import kubernetes
import prometheus_client
import requests

from . import metrics, orphans
from .access_policy import AccessIndex
from .activation import ActivationEstimate
from .config import Settings
from .controller import Controller
from .errors import KubernetesAPIError, OperatorError
from .kube_api import EventRecorder, KubeClient, new_api_client
from .leader import LeaderElector
from .ovh_api import OVHClient
from .projects import Project, Projects
from .reconcile import Context
from .registry import Registry

logger = logging.getLogger(__name__)


class StartupError(Exception):
    """The operator cannot run as configured; the message says what to fix."""


@dataclass
class App:
    settings: Settings
    controller: Controller
    ovh: OVHClient
    kube: KubeClient
    events: EventRecorder
    executors: tuple[ThreadPoolExecutor, ...]
    collector: metrics.ResourcesByReason
    projects: Projects
    metrics_server: WSGIServer | None = None
    elector: LeaderElector | None = None

    @classmethod
    async def start(cls, settings: Settings, *, api_client: kubernetes.client.ApiClient | None = None,
                    ovh_session: requests.Session | None = None) -> App:
        # Separate pools: Kubernetes calls never delay an OVH request that already passed the rate limiter.
        ovh_pool = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="ovh")
        kube_pool = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="kube")
        ovh = OVHClient(settings, ovh_pool, session=ovh_session)
        kube = KubeClient(api_client or new_api_client(), kube_pool)
        events = EventRecorder(kube)
        cluster_id = settings.cluster_id or await kube.namespace_uid("kube-system")
        if not cluster_id:
            raise StartupError("Cannot read the uid of namespace kube-system, which identifies this cluster's OVH "
                               "users: grant the operator get on namespaces, or set OVH_S3_OPERATOR_CLUSTER_ID")
        access = AccessIndex(settings.default_access)
        try:
            access.replace(await kube.list_access_policies(), await kube.list_namespaces())
        except KubernetesAPIError as error:
            raise StartupError(f"Cannot read the access policies and namespaces ({error.message}); grant the "
                               "operator list and watch on both (see deploy/kustomize/base/rbac.yaml)") from None
        activation = ActivationEstimate(settings.user_poll_interval)
        projects = Projects(settings, kube, ovh_pool, Project("", ovh, activation), session=ovh_session)
        try:
            projects.replace(await kube.list_projects())
        except KubernetesAPIError as error:
            raise StartupError(f"Cannot read the OVHProjects ({error.message}); apply the CRDs of this version "
                               "(crds/) and grant the operator list and watch on ovhprojects (see "
                               "deploy/kustomize/base/rbac.yaml)") from None
        ctx = Context(ovh=ovh, kube=kube, events=events, settings=settings, access=access, cluster_id=cluster_id,
                      registry=Registry(kube, settings.operator_namespace),
                      activation=activation, drift_interval=lambda: 0.0, projects=projects)
        controller = Controller(ctx)
        ctx.drift_interval = controller.drift_interval

        def look_again(keys: Iterable[tuple[str, str]]) -> None:
            for key in keys:
                controller.enqueue(key)

        projects.on_change = look_again

        async def resync_access() -> None:
            before = {namespace: access.allowance(namespace) for namespace, _ in controller.keys()}  # noqa: SIM118
            access.replace(await kube.list_access_policies(), await kube.list_namespaces())
            controller.requeue_changed(before)

        async def sweep_orphans() -> None:
            await orphans.sweep(ctx)

        async def warm_up() -> None:
            """Read OVH's clock and the project's roles as soon as the controller starts, so that the first
            new resources do not wait for them (and bad credentials show in the log at once)."""
            if ovh.configuration_error is not None:
                return
            try:
                await ovh.list_roles()
            except OperatorError as error:
                logger.warning("Cannot reach the operator's OVH project yet: %s", error.message)

        controller.run_while_started(warm_up, "OVH warm-up")
        controller.every(settings.access_resync_interval, resync_access, "access policy resync")
        controller.every(settings.project_resync_interval, projects.resync, "OVHProject resync")
        controller.run_while_started(projects.run, "OVHProject checks")
        if settings.orphan_sweep:
            controller.every(settings.orphan_sweep_interval, sweep_orphans, "orphan sweep")
        collector = metrics.watch_resources(lambda: controller.last_outcomes.values())
        server = None
        if settings.metrics_port:
            server, _ = prometheus_client.start_http_server(settings.metrics_port)
        app = cls(settings, controller, ovh, kube, events, (ovh_pool, kube_pool), collector, projects, server)
        app._log_configuration(cluster_id)
        if settings.leader_election:
            namespace = settings.leader_election_namespace or settings.operator_namespace
            app.elector = LeaderElector(kube, namespace, os.environ.get("POD_NAME") or socket.gethostname(),
                                        duration=settings.leader_lease_duration, on_lead=controller.start,
                                        on_lose=controller.stop)
            app.elector.start()
        else:
            metrics.LEADER.set(1)
            await controller.start()
        return app

    def _log_configuration(self, cluster_id: str) -> None:
        problem = self.ovh.configuration_error
        if problem is not None:
            logger.error("%s. Every resource without spec.projectRef will report this until the operator restarts "
                         "with credentials.", problem.message)
            return
        endpoint = urllib.parse.urlsplit(self.settings.ovh_endpoint)
        shown = endpoint._replace(netloc=endpoint.hostname or "").geturl() if endpoint.password else endpoint.geturl()
        logger.info("Using OVH API %s, project %s; this cluster's OVH users are marked %s", shown,
                    self.settings.ovh_service_name or "(the only one)", cluster_id)

    async def close(self) -> None:
        if self.elector is not None:
            await self.elector.stop()
        await self.controller.stop()
        metrics.unwatch(self.collector)
        if self.metrics_server is not None:
            self.metrics_server.shutdown()
        await self.events.close()
        for executor in self.executors:
            executor.shutdown(wait=False, cancel_futures=True)
