"""Drift: changes behind the operator's back, in OVH or in the Secret, are repaired."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

from ovh_s3_operator_sandbox.harness import until

from .conftest import Operator

DRIFT = {"drift_interval": 0.2}
GRANTS = {"grants": [{"bucket": "drift-bucket", "access": "readwrite"}]}
pytestmark = pytest.mark.parametrize("op", [DRIFT], indirect=True)


async def ready_user(op: Operator, name: str) -> tuple[dict[str, object], dict[str, object]]:
    obj = await op.wait_ready(name)
    [user] = op.ovh_users(obj["metadata"]["uid"])
    return obj, user


async def test_user_deleted_in_ovh_is_recreated_with_new_keys(op: Operator) -> None:
    op.create("drifty", GRANTS)
    _, user = await ready_user(op, "drifty")
    old = op.secret_values("drifty-s3")
    op.ovh.project.delete_user_now(user["id"])  # type: ignore[arg-type]
    await until(lambda: (op.get("drifty") or {}).get("status", {}).get("userId") not in (None, user["id"])
                and op.ready(op.get("drifty"))["status"] == "True", what="a new OVH user")  # type: ignore[index]
    await op.assert_consistent(["drifty"])
    new = op.secret_values("drifty-s3")
    assert new is not None and old is not None and new["AWS_ACCESS_KEY_ID"] != old["AWS_ACCESS_KEY_ID"]
    await op.wait_events("UserMissing")


async def test_policy_changed_in_ovh_is_reapplied(op: Operator) -> None:
    op.create("drifty", GRANTS)
    _, user = await ready_user(op, "drifty")
    wanted = json.loads(user["policy"])  # type: ignore[arg-type]
    op.ovh.project.set_policy(user["id"], json.dumps({"Statement": []}))  # type: ignore[arg-type]
    await until(lambda: json.loads(op.ovh.project.user(user["id"])["policy"]) == wanted,  # type: ignore[index, arg-type]
                what="the policy to be re-applied")
    await op.assert_consistent(["drifty"])


async def test_key_deleted_in_ovh_is_replaced(op: Operator) -> None:
    op.create("drifty", GRANTS)
    _, user = await ready_user(op, "drifty")
    old_access = user["credentials"][0]["access"]  # type: ignore[index]
    op.ovh.project.delete_credential(user["id"], old_access)  # type: ignore[arg-type]
    await until(lambda: (op.secret_values("drifty-s3") or {}).get("AWS_ACCESS_KEY_ID") not in (None, old_access),
                what="a new key in the Secret")
    await op.assert_consistent(["drifty"])
    await op.wait_events("KeyMissing", "KeyCreated")


async def test_a_key_added_by_hand_is_deleted(op: Operator) -> None:
    obj = op.create("drifty", GRANTS)
    _, user = await ready_user(op, "drifty")
    op.ovh.project.handle("POST", f"/cloud/project/{op.ovh.service_name}/user/{user['id']}/s3Credentials", "")
    await until(lambda: len(op.ovh_users(obj["metadata"]["uid"])[0]["credentials"]) == 1,
                what="the stray key to be deleted")
    await op.assert_consistent(["drifty"])
    await op.wait_events("KeyDeleted")


async def test_duplicate_users_of_one_resource_are_removed(op: Operator) -> None:
    op.create("drifty", GRANTS)
    _, user = await ready_user(op, "drifty")
    duplicate = op.ovh.project.add_user(user["description"])  # type: ignore[arg-type]
    op.settings_overrides["ovh_consistency_delay"] = 0.0
    await op.restart(ovh_consistency_delay=0.0, ovh_request_timeout=0.01)  # so that the duplicate is old enough
    await until(lambda: op.ovh.project.user(duplicate) is None, what="the duplicate to be deleted")
    await op.assert_consistent(["drifty"])
    assert op.get("drifty")["status"]["userId"] == user["id"]  # type: ignore[index]


async def test_edited_secret_is_restored(op: Operator) -> None:
    op.create("drifty", GRANTS)
    await op.wait_ready("drifty")
    original = op.secret_values("drifty-s3")
    secret = op.secret("drifty-s3")
    assert secret is not None
    secret["data"]["AWS_SECRET_ACCESS_KEY"] = base64.b64encode(b"tampered").decode()
    op.core.replace_namespaced_secret("drifty-s3", "default", secret)
    await until(lambda: op.secret_values("drifty-s3") == original, what="the Secret to be restored")


async def test_deleted_secret_is_restored(op: Operator) -> None:
    op.create("drifty", GRANTS)
    await op.wait_ready("drifty")
    original = op.secret_values("drifty-s3")
    op.core.delete_namespaced_secret("drifty-s3", "default")
    await until(lambda: op.secret_values("drifty-s3") == original, what="the Secret to be restored")
    await op.assert_consistent(["drifty"])


async def test_nothing_drifted_costs_a_few_reads_and_no_writes(op: Operator) -> None:
    names = ["quiet-a", "quiet-b"]
    for name in names:
        op.create(name, GRANTS)
    await op.assert_consistent(names)
    await asyncio.sleep(0.3)
    op.ovh.clear_calls()
    kube_writes = [r for r in op.kube.requests if r[0] in ("POST", "PUT", "PATCH", "DELETE")]
    window = 1.0
    await asyncio.sleep(window)
    calls = op.ovh.calls()
    assert [c for c in calls if c.method != "GET"] == []
    per_resource = [c for c in calls if not c.path.endswith("/user")]
    checks = len(per_resource) / 2  # the policy and the keys; the user comes from the shared listing
    assert len(names) * 2 <= checks <= len(names) * (window / 0.2 + 1)
    assert all(c.path.endswith(("/policy", "/s3Credentials")) for c in per_resource)
    assert [r for r in op.kube.requests if r[0] in ("POST", "PUT", "PATCH", "DELETE")] == kube_writes
