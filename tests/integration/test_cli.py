"""The commands a user types: ``ovh-s3-operator sandbox`` with kubectl, ``run`` against it, ``demo``."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ovh_s3_operator.ovh_api import ACCESS_RULES
from ovh_s3_operator_sandbox.stack import wait_for

from .conftest import World

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed"),
]
ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "backup-writer.yaml"


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "ovh_s3_operator", *args]


class Sandbox:
    def __init__(self, state_dir: Path, *extra: str) -> None:
        self.state_dir = state_dir
        self.output = state_dir.parent / f"{state_dir.name}.out"
        self.process = subprocess.Popen(cli("sandbox", "--state-dir", str(state_dir), *extra),
                                        stdout=self.output.open("wb"), stderr=subprocess.STDOUT)
        wait_for(lambda: "Sandbox ready" in self.output.read_text() or self.process.poll() is not None, 30,
                 what="the sandbox to start")
        assert self.process.poll() is None, self.output.read_text()

    def kubectl(self, *args: str, timeout: float = 60) -> str:
        result = subprocess.run(["kubectl", "--kubeconfig", str(self.state_dir / "kubeconfig"), *args],
                                capture_output=True, text=True, timeout=timeout)
        assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stdout}{result.stderr}"
        return result.stdout

    def ovh_env(self, name: str = "ovh.env") -> dict[str, str]:
        lines = (self.state_dir / name).read_text().splitlines()
        return dict(line.split("=", 1) for line in lines if line)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(30)


@pytest.fixture
def sandbox_factory(tmp_path: Path) -> Iterator[list[Sandbox]]:
    started: list[Sandbox] = []
    yield started
    for sandbox in started:
        if sandbox.process.poll() is None:
            sandbox.process.kill()


def test_sandbox_command_with_kubectl(tmp_path: Path, sandbox_factory: list[Sandbox]) -> None:
    sandbox = Sandbox(tmp_path / "state")
    sandbox_factory.append(sandbox)
    env = sandbox.ovh_env()
    assert set(env) == {"OVH_ENDPOINT", "OVH_APPLICATION_KEY", "OVH_APPLICATION_SECRET", "OVH_CONSUMER_KEY",
                        "OVH_SERVICE_NAME", "REQUESTS_CA_BUNDLE"}
    assert env["OVH_ENDPOINT"].startswith("https://127.0.0.1:")
    assert env["REQUESTS_CA_BUNDLE"] == str(sandbox.state_dir / "ovh-ca.pem")

    sandbox.kubectl("apply", "-f", str(EXAMPLE))
    sandbox.kubectl("wait", "--for=condition=Ready", "osu/backup-writer", "--timeout=60s")
    header, row = sandbox.kubectl("get", "osu", "-A").splitlines()[:2]
    assert header.split() == ["NAMESPACE", "NAME", "READY", "USER", "ID", "SECRET", "AGE"]
    assert row.split()[:3] == ["default", "backup-writer", "True"]
    assert row.split()[4] == "backup-writer-s3"
    assert "REASON" in sandbox.kubectl("get", "osu", "-o", "wide").splitlines()[0]
    described = sandbox.kubectl("describe", "osu", "backup-writer")
    for expected in ("Reconciled", "UserCreated", "PolicyApplied", "KeyCreated", "SecretWritten"):
        assert expected in described
    assert "AWS_SECRET_ACCESS_KEY" in sandbox.kubectl("get", "secret", "backup-writer-s3", "-o", "yaml")

    sandbox.kubectl("delete", "osu", "backup-writer", "--timeout=60s")
    assert "backup-writer" not in sandbox.kubectl("get", "osu", "-A")
    assert sandbox.stop() == 0


def test_run_against_a_sandbox_without_operator(tmp_path: Path, sandbox_factory: list[Sandbox]) -> None:
    sandbox = Sandbox(tmp_path / "state", "--no-operator")
    sandbox_factory.append(sandbox)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OVH_")}
    # An OAuth2 service account this time (python-ovh's client credentials flow, tokens from the sandbox),
    # and the operator's ServiceAccount: the install's RBAC is all it needs.
    oauth2 = sandbox.ovh_env("ovh-oauth2.env")
    assert {"OVH_CLIENT_ID", "OVH_CLIENT_SECRET"} <= set(oauth2) and "OVH_CONSUMER_KEY" not in oauth2
    env |= oauth2 | {"KUBECONFIG": str(sandbox.state_dir / "operator.kubeconfig")}
    log = (tmp_path / "operator.log").open("wb")
    operator = subprocess.Popen(cli("run"), env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        sandbox.kubectl("apply", "-f", str(EXAMPLE))
        sandbox.kubectl("wait", "--for=condition=Ready", "osu/backup-writer", "--timeout=60s")
    finally:
        operator.send_signal(signal.SIGTERM)
        assert operator.wait(30) == 0
    assert sandbox.stop() == 0


def test_demo_walks_the_whole_lifecycle() -> None:
    result = subprocess.run(cli("demo"), capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for expected in ("Ready after", "AWS_SECRET_ACCESS_KEY=••••", "status=ok", "Ready again for generation 2",
                     "same OVH user", "OVH answers 404 for user", "Demo complete: every step happened."):
        assert expected in out


def test_credentials_request_asks_for_exactly_the_rules_the_operator_needs(world: World) -> None:
    ovh_sandbox = world.stack.ovh
    env = {key: value for key, value in os.environ.items() if not key.startswith("OVH_")}
    env |= {"OVH_ENDPOINT": ovh_sandbox.url, "OVH_APPLICATION_KEY": ovh_sandbox.credentials.application_key,
            "OVH_APPLICATION_SECRET": ovh_sandbox.credentials.application_secret,
            "REQUESTS_CA_BUNDLE": str(world.stack.ovh_ca_file)}
    result = subprocess.run(cli("credentials", "request", "--service-name", ovh_sandbox.service_name), env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    consumer_key = re.search(r"Consumer key: (\w+)", result.stdout).group(1)  # type: ignore[union-attr]
    assert "Validate it here: https://" in result.stdout
    granted = ovh_sandbox.validate_consumer_key(consumer_key)
    assert granted == [(method, path.format(service=ovh_sandbox.service_name)) for method, path in ACCESS_RULES]
    world.start_operator({"OVH_CONSUMER_KEY": consumer_key})
    world.create("with-new-key", {"grants": [{"bucket": "b-new", "access": "read"}]})
    world.assert_consistent(["with-new-key"])
