"""End-to-end harness: the emulator and the OVH sandbox on a background loop, the operator as a real process.

Tests talk to both over HTTP with the real ``kubernetes`` and ``ovh`` clients; the sandbox's own
state and call record are read directly for assertions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from ovh_s3_operator_sandbox.background import BackgroundLoop
from ovh_s3_operator_sandbox.clients import SandboxClients
from ovh_s3_operator_sandbox.ovh.server import DEFAULT_ROLES
from ovh_s3_operator_sandbox.policies import ALLOW_EVERYTHING
from ovh_s3_operator_sandbox.stack import OperatorProcess, SandboxStack

from ..support import credential_keys, live_users, owner_uid, redacted, secrets_of_every_project

# Fast retries so that tests converge in seconds; each test may override.
FAST = {
    "OVH_S3_OPERATOR_RETRY_DELAY": "1",
    "OVH_S3_OPERATOR_CONFLICT_RETRY_DELAY": "2",
    "OVH_S3_OPERATOR_PERMANENT_RETRY_DELAY": "5",
    "OVH_S3_OPERATOR_USER_POLL_INTERVAL": "0.1",
    "OVH_S3_OPERATOR_OVH_BACKOFF_BASE": "0.05",
    "OVH_S3_OPERATOR_OVH_BACKOFF_MAX": "0.5",
    "OVH_S3_OPERATOR_OVH_CONSISTENCY_DELAY": "2",
    "OVH_S3_OPERATOR_OVH_REQUEST_TIMEOUT": "5",
    "OVH_S3_OPERATOR_OVH_REQUESTS_PER_SECOND": "100",
    "OVH_S3_OPERATOR_DRIFT_INTERVAL": "0",
    "OVH_S3_OPERATOR_ROTATION_REQUEST_INTERVAL": "0",
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
        self.show_log_on_failure = True

    # --- the operator -----------------------------------------------------------------------------

    def start_operator(self, env: Mapping[str, str] | None = None, *, drop: tuple[str, ...] = (),
                       log_level: str = "--verbose") -> OperatorProcess:
        self._last_start = (env, drop, log_level)
        full_env = self.stack.operator_env(dict(FAST) | dict(env or {}))
        for name in drop:
            full_env.pop(name, None)
        log = self.tmp_path / f"operator-{len(self.logs)}.log"
        self.logs.append(log)
        operator = OperatorProcess(full_env, log.open("wb"), log_level=log_level).start()
        self.operators.append(operator)
        return operator

    def restart_operator(self, *, kill: bool = False) -> OperatorProcess:
        """Stop (or SIGKILL) the last operator and start a new one with the same settings."""
        if kill:
            self.operators[-1].kill()
        else:
            self.operators[-1].stop()
        env, drop, log_level = self._last_start
        return self.start_operator(env, drop=drop, log_level=log_level)

    def operator_log(self) -> str:
        return "".join(log.read_text(errors="replace") for log in self.logs if log.exists())

    def stop_operators(self) -> None:
        for operator in self.operators:
            operator.stop()

    def assert_consistent(self, names: Iterable[str], gone: Iterable[str] = ()) -> None:
        """Each named resource is Ready with exactly one OVH user holding one key, which its Secret holds;
        the ``gone`` resources no longer exist; no OVH user belongs to anything else."""
        live: set[str] = set()
        for name in names:
            obj = self.wait_ready(name)
            uid = obj["metadata"]["uid"]
            live.add(uid)
            [user] = self.ovh_users(uid)
            assert user["status"] == "ok"
            [credential] = user["credentials"]
            values = self.secret_values(obj["status"]["secretName"])
            assert values is not None
            access_key, secret_key = credential_keys(obj)
            assert (values[access_key], values[secret_key]) == (credential["access"], credential["secret"]), name
            assert obj["status"]["userId"] == user["id"]
            assert obj["status"]["accessKeyId"] == credential["access"]
        for name in gone:
            self.wait_gone(name)
        assert sorted(owner_uid(u) or "(no marker)" for u in self.ovh_users()) == sorted(live)

    def ovh_users(self, uid: str | None = None) -> list[dict[str, Any]]:
        """Sandbox users (all, or those carrying a resource's marker), excluding ones being deleted."""
        return live_users(self.stack.ovh.project.users(), uid)

    def secret_values(self, name: str, namespace: str | None = None) -> dict[str, str] | None:
        """The Secret's values, those holding an S3 secret redacted."""
        return redacted(super().secret_values(name, namespace), secrets_of_every_project(self.stack.ovh))


@contextlib.contextmanager
def running_world(tmp_path: Path, options: Mapping[str, Any], failed: Callable[[], bool]) -> Iterator[World]:
    with BackgroundLoop() as loop:
        stack = SandboxStack(tmp_path / "sandbox", ovh_activation=0.3, ovh_deletion=0.2,
                             ovh_roles=options.get("ovh_roles", DEFAULT_ROLES),
                             kube_validate=options.get("kube_validate", True),
                             access=options.get("access", ALLOW_EVERYTHING),
                             ovh_token_lifetime=options.get("ovh_token_lifetime", 3600.0))
        loop.run(stack.start())
        w = World(stack, tmp_path)
        try:
            yield w
        finally:
            w.stop_operators()
            if failed() and w.show_log_on_failure:
                print(f"--- operator log ---\n{w.operator_log()[-20000:]}")
            loop.run(stack.stop())


@pytest.fixture
def world(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[World]:
    """A sandbox for one test (``@pytest.mark.parametrize("world", [{options}], indirect=True)``)."""
    with running_world(tmp_path, getattr(request, "param", {}), lambda: request.node.stash.get(FAILED, False)) as w:
        yield w


FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call" and report.failed:
        item.stash[FAILED] = True
    return report
