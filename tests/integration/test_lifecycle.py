"""The core lifecycle, end to end: a real operator process, the emulator and the OVH sandbox over HTTP."""

from __future__ import annotations

import json
import re
import time

import ovh
import pytest

from ovh_s3_operator.sandbox.stack import wait_for

from .conftest import TIMEOUT, World

pytestmark = pytest.mark.integration

SPEC = {
    "description": "Backups for team A",
    "region": "sbg",
    "grants": [{"bucket": "team-a-backups", "prefix": "nightly/", "access": "readwrite"},
               {"bucket": "team-a-config", "access": "read"}],
}


def statements_by_sid(policy_text: str) -> dict[str, dict[str, object]]:
    return {s["Sid"]: s for s in json.loads(policy_text)["Statement"]}


def test_create_makes_user_policy_key_and_secret(world: World) -> None:
    world.start_operator()
    created = world.create("backup-writer", SPEC)
    uid = created["metadata"]["uid"]
    obj = world.wait_ready("backup-writer")

    [user] = world.ovh_users(uid)
    assert user["status"] == "ok"
    assert user["roles"] == ["objectstore_operator"]
    assert user["description"].startswith("Backups for team A ")
    policy = statements_by_sid(user["policy"])
    assert policy["Grant0Objects"]["Resource"] == ["arn:aws:s3:::team-a-backups/nightly/*"]
    assert "s3:PutObject" in policy["Grant0Objects"]["Action"]
    assert policy["Grant0List"]["Condition"] == {"StringLike": {"s3:prefix": ["nightly/*"]}}
    assert policy["Grant1"]["Resource"] == ["arn:aws:s3:::team-a-config", "arn:aws:s3:::team-a-config/*"]
    assert "s3:PutObject" not in policy["Grant1"]["Action"]
    [credential] = user["credentials"]

    values = world.secret_values("backup-writer-s3")
    assert values == {
        "AWS_ACCESS_KEY_ID": credential["access"],
        "AWS_SECRET_ACCESS_KEY": credential["secret"],
        "AWS_ENDPOINT_URL": "https://s3.sbg.io.cloud.ovh.net",
        "AWS_REGION": "sbg",
    }
    secret = world.secret("backup-writer-s3")
    assert secret is not None
    assert secret["type"] == "Opaque"
    [owner] = secret["metadata"]["ownerReferences"]
    assert (owner["uid"], owner["kind"], owner["controller"]) == (uid, "OVHObjectStorageUser", True)
    assert secret["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "ovh-s3-operator"

    status = obj["status"]
    assert status["userId"] == user["id"]
    assert status["username"] == user["username"]
    assert status["accessKeyId"] == credential["access"]
    assert status["secretName"] == "backup-writer-s3"
    assert status["observedGeneration"] == obj["metadata"]["generation"]
    assert "s3.ovh-operator.dev/ovh-user" in obj["metadata"]["finalizers"]

    # The same facts through the real OVH API client.
    path = f"{world.project}/user/{user['id']}"
    assert world.ovh.get(path)["status"] == "ok"
    assert statements_by_sid(world.ovh.get(f"{path}/policy")["policy"]) == policy
    assert [c["access"] for c in world.ovh.get(f"{path}/s3Credentials")] == [credential["access"]]


def test_grants_change_reapplies_policy_with_same_user_and_keys(world: World) -> None:
    world.start_operator()
    uid = world.create("app", {"grants": [{"bucket": "app-data", "access": "read"}]})["metadata"]["uid"]
    first = world.wait_ready("app")
    [user] = world.ovh_users(uid)
    keys = world.secret_values("app-s3")
    world.stack.ovh.clear_calls()

    world.patch_spec("app", {"grants": [{"bucket": "app-data", "access": "readwrite"},
                                        {"bucket": "app-archive", "access": "admin"}]})
    second = world.wait_ready("app", generation=2)

    [after] = world.ovh_users(uid)
    assert after["id"] == user["id"] == second["status"]["userId"] == first["status"]["userId"]
    policy = statements_by_sid(after["policy"])
    assert "s3:PutObject" in policy["Grant0"]["Action"]
    assert policy["Grant1Admin"]["Action"] == ["s3:*"]
    assert world.secret_values("app-s3") == keys
    writes = [(c.method, c.path) for c in world.stack.ovh.writes()]
    assert [w for w in writes if w[1].endswith("/policy")] == [("POST", f"/cloud/project/{world.stack.ovh.service_name}"
                                                                        f"/user/{user['id']}/policy")]
    assert not [w for w in writes if w[1].endswith(("/user", "/s3Credentials"))]


def test_secret_deleted_or_edited_by_hand_is_restored_from_events(world: World) -> None:
    world.start_operator()  # drift timer off: restoration must come from the Secret's own events
    world.create("restore-me", {"grants": [{"bucket": "b-restore", "access": "read"}]})
    world.wait_ready("restore-me")
    original = world.secret_values("restore-me-s3")
    assert original is not None

    world.core.delete_namespaced_secret("restore-me-s3", world.namespace)
    restored = wait_for(lambda: world.secret_values("restore-me-s3"), 20, what="Secret to be recreated")
    assert restored == original

    world.core.patch_namespaced_secret("restore-me-s3", world.namespace,
                                       {"data": {"AWS_SECRET_ACCESS_KEY": "dGFtcGVyZWQ="}})

    def repaired() -> bool:
        return world.secret_values("restore-me-s3") == original

    wait_for(repaired, 20, what="edited Secret to be restored")
    # Still exactly one key in OVH: restoring reads the existing key's secret, it does not mint a new one.
    [user] = world.ovh_users()
    assert [c["access"] for c in user["credentials"]] == [original["AWS_ACCESS_KEY_ID"]]


def test_restart_with_ready_resources_makes_no_ovh_writes(world: World) -> None:
    operator = world.start_operator()
    for name in ("r1", "r2", "r3"):
        world.create(name, {"grants": [{"bucket": f"bucket-{name}", "access": "read"}]})
    for name in ("r1", "r2", "r3"):
        world.wait_ready(name)
    operator.stop()
    world.stack.ovh.clear_calls()
    before = {name: world.get(name)["metadata"]["resourceVersion"] for name in ("r1", "r2", "r3")}  # type: ignore[index]

    world.start_operator()
    wait_for(lambda: len(re.findall(r"Resuming is processed", world.logs[-1].read_text())) >= 3, TIMEOUT,
             what="the restarted operator to resume all resources")
    time.sleep(1)  # let any stray follow-up happen before asserting that nothing did
    assert world.stack.ovh.writes() == []
    for name in ("r1", "r2", "r3"):
        assert world.ready(world.get(name))["status"] == "True"  # type: ignore[index]
        assert world.get(name)["metadata"]["resourceVersion"] == before[name]  # type: ignore[index]


def test_delete_removes_user_secret_and_finalizer(world: World) -> None:
    world.start_operator()
    uid = world.create("short-lived", {"grants": [{"bucket": "tmp-bucket", "access": "readwrite"}]})["metadata"]["uid"]
    world.wait_ready("short-lived")
    [user] = world.ovh_users(uid)

    world.delete("short-lived")
    world.wait_gone("short-lived")

    assert world.stack.ovh.user(user["id"]) is None
    assert world.secret("short-lived-s3") is None
    with pytest.raises(ovh.exceptions.ResourceNotFoundError):
        world.ovh.get(f"{world.project}/user/{user['id']}")
    assert "Deleted OVH user" in world.operator_log()
