"""End-to-end harness: the emulator and the OVH sandbox on a background loop, the operator as a real process.

Tests talk to both over HTTP with the real ``kubernetes`` and ``ovh`` clients; the sandbox's own
state and call record are read directly for assertions.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from ovh_s3_operator.sandbox.background import BackgroundLoop
from ovh_s3_operator.sandbox.clients import SandboxClients
from ovh_s3_operator.sandbox.ovh import DEFAULT_ROLES
from ovh_s3_operator.sandbox.stack import OperatorProcess, SandboxStack

# Fast retries so that tests converge in seconds; each test may override.
FAST = {
    "OVH_S3_OPERATOR_RETRY_DELAY": "1",
    "OVH_S3_OPERATOR_CONFLICT_RETRY_DELAY": "2",
    "OVH_S3_OPERATOR_PERMANENT_RETRY_DELAY": "5",
    "OVH_S3_OPERATOR_USER_POLL_INTERVAL": "0.1",
    "OVH_S3_OPERATOR_USER_WAIT_PER_ATTEMPT": "5",
    "OVH_S3_OPERATOR_OVH_BACKOFF_BASE": "0.05",
    "OVH_S3_OPERATOR_OVH_BACKOFF_MAX": "0.5",
    "OVH_S3_OPERATOR_OVH_CONSISTENCY_DELAY": "2",
    "OVH_S3_OPERATOR_OVH_REQUESTS_PER_SECOND": "100",
    "OVH_S3_OPERATOR_DRIFT_INTERVAL": "0",
}
TIMEOUT = 30.0


class World(SandboxClients):
    """One sandbox, its clients bound to the test namespace, and the operator processes started in a test."""

    def __init__(self, stack: SandboxStack, tmp_path: Path) -> None:
        super().__init__(stack, namespace="team-a")
        self.tmp_path = tmp_path
        self.core.create_namespace({"metadata": {"name": self.namespace}})
        self.operators: list[OperatorProcess] = []
        self.logs: list[Path] = []

    # --- the operator -----------------------------------------------------------------------------

    def start_operator(self, env: Mapping[str, str] | None = None, *, drop: tuple[str, ...] = ()) -> OperatorProcess:
        full_env = self.stack.operator_env(dict(FAST) | dict(env or {}))
        for name in drop:
            full_env.pop(name, None)
        log = self.tmp_path / f"operator-{len(self.logs)}.log"
        self.logs.append(log)
        operator = OperatorProcess(full_env, log.open("wb")).start()
        self.operators.append(operator)
        return operator

    def operator_log(self) -> str:
        return "".join(log.read_text(errors="replace") for log in self.logs if log.exists())

    def stop_operators(self) -> None:
        for operator in self.operators:
            operator.stop()

    def ready(self, obj: Mapping[str, Any] | None) -> dict[str, Any] | None:
        return self.ready_condition(obj)

    def ovh_users(self, uid: str | None = None) -> list[dict[str, Any]]:
        """Sandbox users (all, or those carrying a resource's marker), excluding ones being deleted."""
        users = [u for u in self.stack.ovh.users() if u["status"] not in ("deleting", "deleted")]
        return [u for u in users if uid is None or f"[osu:{uid}]" in u["description"]]


@pytest.fixture
def world(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[World]:
    roles = getattr(request, "param", {}).get("ovh_roles", DEFAULT_ROLES)
    with BackgroundLoop() as loop:
        stack = SandboxStack(tmp_path / "sandbox", ovh_activation=0.3, ovh_deletion=0.2, ovh_roles=roles)
        loop.run(stack.start())
        w = World(stack, tmp_path)
        try:
            yield w
        finally:
            w.stop_operators()
            if request.node.stash.get(FAILED, False):
                print(f"--- operator log ---\n{w.operator_log()[-20000:]}")
            loop.run(stack.stop())


FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call" and report.failed:
        item.stash[FAILED] = True
    return report
