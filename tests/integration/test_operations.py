"""What a platform team watches and relies on: Prometheus metrics, and two replicas with one leading."""

from __future__ import annotations

import re
import socket
import urllib.request

import pytest

from ovh_s3_operator_sandbox.stack import wait_for

from ..deploy.manifests import render_chart
from .conftest import World

pytestmark = pytest.mark.integration
GRANTS = {"grants": [{"bucket": "ops-bucket", "access": "read"}]}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus' text format."""
    for line in text.splitlines():
        match = re.fullmatch(rf"{re.escape(name)}(?:\{{(.*)\}})? (\S+)", line)
        if match is None:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
        if all(found.get(key) == value for key, value in labels.items()):
            return float(match.group(2))
    return None


def test_metrics_are_served(world: World) -> None:
    port = free_port()
    world.start_operator({"OVH_S3_OPERATOR_METRICS_PORT": str(port)})
    world.create("measured", GRANTS)
    world.create("refused", {"region": "mars", **GRANTS})
    world.wait_ready("measured")

    def scrape() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            return str(answer.read().decode())

    def scraped_with_the_resource() -> str | None:
        text = scrape()
        return text if metric(text, "ovh_s3_operator_resources", ready="true") else None

    text = wait_for(scraped_with_the_resource, 30, what="the resource in the metrics")
    assert metric(text, "ovh_s3_operator_resources", ready="true", reason="Reconciled") == 1
    assert metric(text, "ovh_s3_operator_resources", ready="false", reason="InvalidSpec") == 1
    assert metric(text, "ovh_s3_operator_reconciles_total", result="ready", reason="Reconciled")
    assert metric(text, "ovh_s3_operator_ovh_requests_total", route="POST /cloud/project/{sn}/user", status="200") == 1
    assert metric(text, "ovh_s3_operator_ovh_request_duration_seconds_count",
                  route="POST /cloud/project/{sn}/user/{id}/s3Credentials") == 1
    assert metric(text, "ovh_s3_operator_ovh_rate_limiter_wait_seconds_count")
    assert metric(text, "ovh_s3_operator_leader") == 1
    assert metric(text, "ovh_s3_operator_drift_interval_seconds") == 0  # drift checks are off here
    assert "ovh_s3_operator_drift_repairs_total" in text or "ovh_s3_operator_drift_repairs" in text


LEASE = {"OVH_S3_OPERATOR_LEADER_ELECTION": "true", "POD_NAMESPACE": "ovh-s3-operator",
         "OVH_S3_OPERATOR_LEADER_LEASE_DURATION": "3"}


def holder(world: World) -> str | None:
    lease = world.stack.kube.get_object("coordination.k8s.io/v1", "leases", "ovh-s3-operator", "ovh-s3-operator")
    return (lease or {}).get("spec", {}).get("holderIdentity")


def grant_leader_election(world: World) -> None:
    """The Role and RoleBinding for the Lease that the Helm chart adds with several replicas (the
    sandbox applies the one-replica RBAC of deploy/kustomize/base): the operator needs no more."""
    for obj in render_chart({"replicaCount": 2}):
        if obj["kind"] in ("Role", "RoleBinding") and obj["metadata"]["name"].endswith("-leader-election"):
            world.stack.kube.apply(obj)


def test_two_replicas_one_acts_and_the_other_takes_over(world: World) -> None:
    grant_leader_election(world)
    first = world.start_operator({**LEASE, "POD_NAME": "replica-a"})
    wait_for(lambda: holder(world) == "replica-a", 30, what="replica-a to lead")
    second = world.start_operator({**LEASE, "POD_NAME": "replica-b"})
    names = ["ha-1", "ha-2", "ha-3"]
    for name in names:
        world.create(name, GRANTS)
    world.assert_consistent(names)
    logs = [log.read_text() for log in world.logs]
    assert logs[0].count("Created OVH user") == 3 and "Created OVH user" not in logs[1]  # one acts
    assert holder(world) == "replica-a"

    first.kill()  # the leader crashes: it does not release the Lease
    world.create("ha-4", GRANTS)
    wait_for(lambda: holder(world) == "replica-b", 3 * 3, what="replica-b to take over within the lease duration")
    world.assert_consistent([*names, "ha-4"])
    assert "Created OVH user" in world.logs[1].read_text()
    assert second.running
