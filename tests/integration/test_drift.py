"""Drift self-heal: changes made in OVH behind the operator's back are repaired by the periodic check."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from ovh_s3_operator.sandbox.stack import wait_for

from .conftest import World

pytestmark = pytest.mark.integration

DRIFT = {"OVH_S3_OPERATOR_DRIFT_INTERVAL": "1"}
GRANTS = {"grants": [{"bucket": "drift-bucket", "access": "readwrite"}]}


def event_reasons(world: World) -> list[str]:
    return [e.reason for e in world.core.list_namespaced_event(world.namespace).items]


def ready_user(world: World, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    obj = world.wait_ready(name)
    [user] = world.ovh_users(obj["metadata"]["uid"])
    return obj, user


def test_user_deleted_in_ovh_is_recreated_with_new_keys(world: World) -> None:
    world.start_operator(DRIFT)
    world.create("drifty", GRANTS)
    _, user = ready_user(world, "drifty")
    old_keys = world.secret_values("drifty-s3")
    world.stack.ovh.delete_user_now(user["id"])

    def replaced() -> dict[str, Any] | None:
        current = world.get("drifty")
        status = (current or {}).get("status", {})
        ok = status.get("userId") not in (None, user["id"]) and world.ready(current)["status"] == "True"  # type: ignore[index]
        return current if ok else None

    wait_for(replaced, 30, what="a new OVH user")
    world.assert_consistent(["drifty"])
    new_keys = world.secret_values("drifty-s3")
    assert new_keys is not None and old_keys is not None
    assert new_keys["AWS_ACCESS_KEY_ID"] != old_keys["AWS_ACCESS_KEY_ID"]
    assert "UserMissing" in event_reasons(world)


def test_policy_changed_in_ovh_is_reapplied(world: World) -> None:
    world.start_operator(DRIFT)
    world.create("drifty", GRANTS)
    _, user = ready_user(world, "drifty")
    wanted = json.loads(user["policy"])
    world.stack.ovh.set_policy(user["id"], json.dumps({"Statement": []}))
    wait_for(lambda: json.loads(world.stack.ovh.user(user["id"])["policy"]) == wanted, 30,  # type: ignore[index]
             what="the policy to be re-applied")
    world.assert_consistent(["drifty"])


def test_key_deleted_in_ovh_is_replaced(world: World) -> None:
    world.start_operator(DRIFT)
    world.create("drifty", GRANTS)
    _, user = ready_user(world, "drifty")
    old_access = user["credentials"][0]["access"]
    world.stack.ovh.delete_credential(user["id"], old_access)
    wait_for(lambda: (world.secret_values("drifty-s3") or {}).get("AWS_ACCESS_KEY_ID") not in (None, old_access),
             30, what="a new key in the Secret")
    world.assert_consistent(["drifty"])
    assert {"KeyMissing", "KeyCreated"} <= set(event_reasons(world))


def test_nothing_drifted_costs_a_few_reads_and_no_writes(world: World) -> None:
    world.start_operator(DRIFT)
    names = ["quiet-a", "quiet-b"]
    for name in names:
        world.create(name, GRANTS)
    world.assert_consistent(names)
    time.sleep(1.5)  # let the first checks after creation settle
    world.stack.ovh.clear_calls()
    window = 5.0
    time.sleep(window)
    calls = world.stack.ovh.calls()
    assert [c for c in calls if c.method != "GET"] == []
    # Each check reads the user, its policy and its keys; the user listing (for duplicates) is shared
    # by all checks of one interval.
    per_resource = [c for c in calls if not c.path.endswith("/user")]
    listings = len(calls) - len(per_resource)
    checks = len(per_resource) / 3
    assert len(names) * 2 <= checks <= len(names) * (window / 0.9 + 1)
    assert listings <= window / 0.9 + 1
    assert all(c.path.endswith(("/policy", "/s3Credentials")) or c.path.split("/")[-1].isdigit()
               for c in per_resource)
