"""The sandbox as one unit: both servers, the files clients need, and the operator as a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

import ovh
import yaml

from ovh_s3_operator.access_policy import POLICY_PLURAL
from ovh_s3_operator.manifests import crd_documents, installed_folder
from ovh_s3_operator.model import API_VERSION
from ovh_s3_operator.ovh_api import ACCESS_RULES

from .kube.server import KubeEmulator
from .ovh.server import DEFAULT_ROLES, OVHSandbox
from .policies import SANDBOX_DEFAULT

T = TypeVar("T")

# Where deploy/kustomize/base/rbac.yaml puts the operator: its ServiceAccount, bound to its ClusterRole.
OPERATOR_NAMESPACE = "ovh-s3-operator"
OPERATOR_SERVICE_ACCOUNT = "ovh-s3-operator"
DEPLOY_FILES = ("namespace.yaml", "rbac.yaml")


def examples() -> list[Path]:
    """The example resources (``examples/`` of the source tree, shipped in the sandbox's wheel)."""
    folder = installed_folder("ovh-s3-operator-sandbox", "ovh_s3_operator_sandbox/examples", "../examples")
    return sorted(folder.glob("*.yaml"))


def deploy_documents() -> list[dict[str, Any]]:
    """The objects of ``namespace.yaml`` and ``rbac.yaml`` of ``deploy/kustomize/base`` (from the source
    tree, or the sandbox's wheel): the operator's namespace, ServiceAccount, ClusterRoles and binding."""
    folder = installed_folder("ovh-s3-operator-sandbox", "ovh_s3_operator_sandbox/deploy",
                              "../deploy/kustomize/base")
    return [doc for name in DEPLOY_FILES for doc in yaml.safe_load_all((folder / name).read_text()) if doc]


def install_operator_rbac(kube: KubeEmulator) -> str:
    """Apply the operator's namespace and RBAC to an emulator; returns the operator's bearer token."""
    for document in deploy_documents():
        kube.apply(document)
    return kube.service_account_token(OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT)


class SandboxStack:
    """A Kubernetes API emulator and an OVH API sandbox (over HTTPS, as OVH) on 127.0.0.1, plus
    ``kubeconfig``, ``ovh.env`` (the application's keys), ``ovh-oauth2.env`` (an OAuth2 service account
    instead) and ``ovh-ca.pem`` (the CA of the OVH sandbox's certificate, which both env files name in
    ``REQUESTS_CA_BUNDLE``)."""

    def __init__(self, state_dir: Path, *, ovh_latency: float = 0.0, ovh_activation: float = 1.0,
                 ovh_deletion: float = 0.5, ovh_rate_limit: float | None = None,
                 ovh_roles: Sequence[str] = DEFAULT_ROLES, kube_port: int = 0, ovh_port: int = 0,
                 kube_validate: bool = True, access: Mapping[str, Mapping[str, Any]] = SANDBOX_DEFAULT,
                 ovh_token_lifetime: float = 3600.0) -> None:
        self.state_dir = state_dir
        self.kube = KubeEmulator(validate=kube_validate)
        self.ovh = OVHSandbox(latency=ovh_latency, activation=ovh_activation, deletion=ovh_deletion,
                              rate_limit=ovh_rate_limit, roles=ovh_roles, access_rules=ACCESS_RULES,
                              token_lifetime=ovh_token_lifetime)
        self._ports = (kube_port, ovh_port)
        self._access = access

    @property
    def kubeconfig(self) -> Path:
        """The admin's kubeconfig (allowed everything)."""
        return self.state_dir / "kubeconfig"

    @property
    def operator_kubeconfig(self) -> Path:
        """The kubeconfig of the operator's ServiceAccount, with only what the install's RBAC grants it."""
        return self.state_dir / "operator.kubeconfig"

    @property
    def ovh_env_file(self) -> Path:
        return self.state_dir / "ovh.env"

    @property
    def ovh_oauth2_env_file(self) -> Path:
        return self.state_dir / "ovh-oauth2.env"

    @property
    def ovh_ca_file(self) -> Path:
        return self.state_dir / "ovh-ca.pem"

    def ovh_client(self) -> ovh.Client:
        """python-ovh's client with the sandbox's application keys, trusting its CA (python-ovh has no option
        for a CA: its session's, whatever REQUESTS_CA_BUNDLE says)."""
        self.ovh.register()
        credentials = self.ovh.credentials
        client = ovh.Client(endpoint=self.ovh.url, application_key=credentials.application_key,
                            application_secret=credentials.application_secret, consumer_key=credentials.consumer_key)
        client._session.trust_env = False
        client._session.verify = str(self.ovh_ca_file)
        return client

    def ovh_env(self, *, oauth2: bool = False) -> dict[str, str]:
        """The OVH variables of ``ovh.env`` (or ``ovh-oauth2.env``): endpoint, credentials, project, CA."""
        return {**self.ovh.env(oauth2=oauth2), "REQUESTS_CA_BUNDLE": str(self.ovh_ca_file)}

    async def start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        await self.kube.start(port=self._ports[0])
        await self.ovh.start(port=self._ports[1], tls=True)
        assert self.ovh.ca_pem is not None
        self.ovh_ca_file.write_bytes(self.ovh.ca_pem)
        for crd in crd_documents():
            self.kube.install_crd(crd)
        for name, spec in self._access.items():
            self.kube.create_object(API_VERSION, POLICY_PLURAL, {
                "apiVersion": API_VERSION, "kind": "OVHObjectStorageAccessPolicy", "metadata": {"name": name},
                "spec": dict(spec)})
        operator_token = install_operator_rbac(self.kube)
        self.kube.write_kubeconfig(self.kubeconfig)
        self.kube.write_kubeconfig(self.operator_kubeconfig, OPERATOR_NAMESPACE, operator_token)
        for path, oauth2 in ((self.ovh_env_file, False), (self.ovh_oauth2_env_file, True)):
            path.write_text("".join(f"{key}={value}\n" for key, value in self.ovh_env(oauth2=oauth2).items()))
            path.chmod(0o600)

    async def stop(self) -> None:
        await self.ovh.stop()
        await self.kube.stop()

    def operator_env(self, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment for ``ovh-s3-operator run`` against this sandbox.

        OVH credentials and in-cluster settings of the caller are replaced; the operator's own
        ``OVH_S3_OPERATOR_*`` knobs are kept, with a local-friendly rate limit unless one is set. The
        operator runs "in" the namespace of the install (``POD_NAMESPACE``), where OVHProjects' Secrets live.
        """
        env = {key: value for key, value in os.environ.items()
               if key.startswith("OVH_S3_OPERATOR_") or not key.startswith(("OVH_", "KUBERNETES_SERVICE_"))}
        env.setdefault("OVH_S3_OPERATOR_OVH_REQUESTS_PER_SECOND", "20")
        env.setdefault("OVH_S3_OPERATOR_METRICS_PORT", "0")  # several operators may run side by side
        env.setdefault("POD_NAMESPACE", OPERATOR_NAMESPACE)  # as the Deployment's downward API sets it
        env.update(self.ovh_env())
        env["KUBECONFIG"] = str(self.operator_kubeconfig)
        env.update(overrides or {})
        return env


class OperatorProcess:
    """``ovh-s3-operator run`` as a child process (this Python environment's, or ``python``'s)."""

    def __init__(self, env: Mapping[str, str], output: IO[Any] | None = None, *, log_level: str = "--verbose",
                 python: str | None = None) -> None:
        self._env = dict(env)
        self._output = output
        self._log_level = log_level
        self._python = python or sys.executable
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> OperatorProcess:
        command = [self._python, "-m", "ovh_s3_operator", "run", self._log_level]
        self.process = subprocess.Popen(command, env=self._env, stdout=self._output,
                                        stderr=subprocess.STDOUT if self._output else None)
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit in time. Returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL: a crash, with no chance to clean up."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def wait_for(predicate: Callable[[], T | None], timeout: float, interval: float = 0.1, what: str = "condition") -> T:
    """Poll ``predicate()`` until it returns something truthy; raise TimeoutError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
