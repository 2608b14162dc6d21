"""OVH faults injected over HTTP: the operator retries what is safe to retry, reports what persists,
recovers by itself, never loops hot, and never creates a second user for one resource."""

from __future__ import annotations

import math
import re
import time
from typing import Any

import pytest

from ovh_s3_operator.sandbox.stack import wait_for

from .conftest import World

pytestmark = pytest.mark.integration

GRANTS = {"grants": [{"bucket": "fault-bucket", "access": "read"}]}


def calls_to(world: World, method: str, pattern: str) -> list[Any]:
    return [c for c in world.stack.ovh.calls() if c.method == method and re.search(pattern, c.path)]


def events(world: World, reason: str) -> list[Any]:
    return [e for e in world.core.list_namespaced_event(world.namespace).items if e.reason == reason]


def test_retry_after_is_honoured(world: World) -> None:
    world.start_operator()
    world.stack.ovh.add_fault(method="GET", path=r"/user$", status=429, retry_after=2)
    world.create("limited", GRANTS)
    world.wait_ready("limited")
    first, second = calls_to(world, "GET", r"/user$")[:2]
    assert first.status == 429
    assert second.at - first.at >= 2.0


@pytest.mark.parametrize("fault", [
    {"status": 500}, {"status": 502}, {"status": 503},
    {"reset": True},
    {"status": 502, "body": "<html>Bad Gateway</html>"},
    {"delay": 2.0},
], ids=["500", "502", "503", "connection-reset", "not-json", "timeout"])
def test_transient_faults_are_retried_inside_one_reconcile(world: World, fault: dict[str, Any]) -> None:
    world.start_operator({"OVH_S3_OPERATOR_OVH_REQUEST_TIMEOUT": "1"})
    world.stack.ovh.add_fault(method="GET", path=r"/s3Credentials$", times=2, **fault)
    world.create("flaky", GRANTS)
    world.wait_ready("flaky")
    # A timed-out call is recorded when the sandbox finishes it, after the client gave up.
    wait_for(lambda: len(calls_to(world, "GET", r"/s3Credentials$")) == 3, 10, what="3 calls")
    assert events(world, "OVHUnavailable") == []  # the client's own retries absorbed it
    world.assert_consistent(["flaky"])


def test_persistent_outage_is_reported_without_a_hot_loop_and_recovers(world: World) -> None:
    world.start_operator({"OVH_S3_OPERATOR_OVH_MAX_ATTEMPTS": "3"})
    outage = world.stack.ovh.add_fault(method="GET", path=r"/role$", status=503, times=-1)
    world.create("outage", GRANTS)
    obj = world.wait_condition("outage", "False", "OVHUnavailable")
    assert "HTTP 503" in world.ready(obj)["message"]  # type: ignore[index]

    window = 4.0
    before = len(calls_to(world, "GET", r"/role$"))
    time.sleep(window)
    during = len(calls_to(world, "GET", r"/role$")) - before
    # RETRY_DELAY is 1 s and each reconcile makes at most 3 attempts.
    assert 0 < during <= 3 * (math.ceil(window / 1.0) + 1)

    world.stack.ovh.remove_fault(outage)
    world.wait_ready("outage")
    world.assert_consistent(["outage"])


def test_rejected_credentials_are_not_retried_in_a_storm(world: World) -> None:
    world.start_operator({"OVH_S3_OPERATOR_PERMANENT_RETRY_DELAY": "600"})
    world.stack.ovh.revoke_consumer_key()
    world.create("denied", GRANTS)
    obj = world.wait_condition("denied", "False", "OVHCredentialsRejected")
    assert "OVH_CONSUMER_KEY" in world.ready(obj)["message"]  # type: ignore[index]
    time.sleep(3)
    refused = len(world.stack.ovh.calls())
    assert refused <= 3  # /auth/time, one refused call, nothing more
    world.patch_spec("denied", {"description": "try again"})
    world.wait_condition("denied", "False", "OVHCredentialsRejected", generation=2)
    assert len(world.stack.ovh.calls()) > refused  # the spec change was retried at once
    assert world.ovh_users() == []


def test_ovh_refusal_waits_for_a_spec_change(world: World) -> None:
    world.start_operator({"OVH_S3_OPERATOR_PERMANENT_RETRY_DELAY": "600"})
    refusal = world.stack.ovh.add_fault(method="POST", path=r"/policy$", status=400, times=-1)
    world.create("refused", GRANTS)
    obj = world.wait_condition("refused", "False", "OVHRejected")
    assert "OVH refused POST" in world.ready(obj)["message"]  # type: ignore[index]
    time.sleep(3)
    assert len(calls_to(world, "POST", r"/policy$")) == 1
    world.stack.ovh.remove_fault(refusal)
    world.patch_spec("refused", {"grants": [{"bucket": "fault-bucket", "access": "readwrite"}]})
    world.wait_ready("refused", generation=2)
    world.assert_consistent(["refused"])


def test_user_stuck_in_creating(world: World) -> None:
    world.start_operator({"OVH_S3_OPERATOR_USER_READY_TIMEOUT": "2", "OVH_S3_OPERATOR_USER_WAIT_PER_ATTEMPT": "1"})
    world.stack.ovh.activation = math.inf
    world.create("stuck", GRANTS)
    world.wait_condition("stuck", "False", "UserNotReady")
    obj = world.wait_condition("stuck", "False", "UserStuck")
    assert "check the project in the OVH console" in world.ready(obj)["message"]  # type: ignore[index]
    world.stack.ovh.activation = 0
    world.wait_ready("stuck", timeout=60)
    world.assert_consistent(["stuck"])


def test_user_briefly_unknown_after_creation(world: World) -> None:
    world.stack.ovh.visibility_delay = 1.5
    world.start_operator()
    world.create("eventual", GRANTS)
    world.assert_consistent(["eventual"])
    assert len(calls_to(world, "POST", r"/user$")) == 1


@pytest.mark.parametrize("fault", [{"status": 502, "after": True}, {"reset": True, "after": True}],
                         ids=["502", "connection-reset"])
@pytest.mark.parametrize("visibility_delay", [0.0, 1.0], ids=["visible", "eventually-visible"])
def test_lost_answer_to_user_creation_adopts_instead_of_duplicating(
        world: World, fault: dict[str, Any], visibility_delay: float) -> None:
    world.stack.ovh.visibility_delay = visibility_delay
    world.start_operator()
    world.stack.ovh.add_fault(method="POST", path=r"/user$", **fault)
    world.create("lost", GRANTS)
    world.assert_consistent(["lost"])
    assert len(calls_to(world, "POST", r"/user$")) == 1
    assert events(world, "UserAdopted")


def test_lost_answer_to_key_creation_reuses_the_key(world: World) -> None:
    world.start_operator()
    world.stack.ovh.add_fault(method="POST", path=r"/s3Credentials$", status=502, after=True)
    world.create("lost-key", GRANTS)
    world.assert_consistent(["lost-key"])
    assert len(calls_to(world, "POST", r"/s3Credentials$")) == 1


def test_client_side_rate_limit_is_shared_by_all_resources(world: World) -> None:
    rate = 4
    world.start_operator({"OVH_S3_OPERATOR_OVH_REQUESTS_PER_SECOND": str(rate)})
    names = [f"rl{i}" for i in range(6)]
    for name in names:
        world.create(name, GRANTS)
    world.assert_consistent(names)
    times = sorted(c.at for c in world.stack.ovh.calls())
    window = 3.0
    busiest = max(sum(1 for t in times if start <= t < start + window) for start in times)
    assert busiest <= rate + rate * window + 1  # a full bucket, its refill, and python-ovh's /auth/time


def test_ovh_rate_limit_429s_converge(world: World) -> None:
    world.stack.ovh.rate_limit = 3
    world.start_operator({"OVH_S3_OPERATOR_OVH_REQUESTS_PER_SECOND": "50", "OVH_S3_OPERATOR_OVH_MAX_ATTEMPTS": "8"})
    names = [f"rl{i}" for i in range(5)]
    for name in names:
        world.create(name, GRANTS)
    world.assert_consistent(names)
    statuses = [c.status for c in world.stack.ovh.calls()]
    assert statuses.count(429) > 0
    assert statuses.count(429) <= 2 * (len(statuses) - statuses.count(429))



def test_delete_right_after_creation_while_ovh_hides_the_user(world: World) -> None:
    world.stack.ovh.visibility_delay = 3.0
    world.start_operator()
    uid = world.create("hidden", GRANTS)["metadata"]["uid"]
    wait_for(lambda: (world.get("hidden") or {}).get("status", {}).get("userId"), 20, what="the user id")
    world.delete("hidden")
    world.wait_gone("hidden")
    assert world.ovh_users(uid) == []


def test_create_delayed_by_retry_after_then_lost_makes_one_user(world: World) -> None:
    world.stack.ovh.visibility_delay = 1.5
    world.start_operator({"OVH_S3_OPERATOR_OVH_REQUEST_TIMEOUT": "1"})
    world.stack.ovh.add_fault(method="POST", path=r"/user$", status=429, retry_after=3)
    world.stack.ovh.add_fault(method="POST", path=r"/user$", reset=True, after=True)  # processed, answer lost
    world.create("delayed", GRANTS)
    world.assert_consistent(["delayed"])
    time.sleep(2)
    world.assert_consistent(["delayed"])
