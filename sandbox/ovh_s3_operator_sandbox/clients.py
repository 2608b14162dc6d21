"""The real ``kubernetes`` and ``ovh`` clients pointed at a running sandbox, with blocking waits (the demo
and the process tests)."""

from __future__ import annotations

from typing import Any

import kubernetes

from .objects import Objects
from .stack import SandboxStack, wait_for


class SandboxClients(Objects):
    def __init__(self, stack: SandboxStack, namespace: str = "default") -> None:
        super().__init__(kubernetes.config.new_client_from_config(config_file=str(stack.kubeconfig)), namespace)
        self.stack = stack
        self.ovh = stack.ovh_client()
        self.project = f"/cloud/project/{stack.ovh.service_name}"

    def wait_condition(self, name: str, status: str, reason: str | None = None, *, namespace: str | None = None,
                       generation: int | None = None, timeout: float = 30.0) -> dict[str, Any]:
        """Wait until Ready has ``status`` (and ``reason``) for the object's (or the given) generation."""
        result: dict[str, Any] = wait_for(lambda: self.ready_for(name, status, reason, namespace, generation), timeout,
                                          what=f"{name} Ready={status} {reason or ''}")
        return result

    def wait_ready(self, name: str, **kwargs: Any) -> dict[str, Any]:
        return self.wait_condition(name, "True", "Reconciled", **kwargs)

    def wait_gone(self, name: str, namespace: str | None = None, timeout: float = 30.0) -> None:
        wait_for(lambda: self.get(name, namespace) is None, timeout, what=f"{name} to be deleted")
