"""The operator as users run it: a real ``ovh-s3-operator run`` process (kopf watching over HTTP), the
emulator and the OVH sandbox over HTTP, the real clients. What only a process shows: kopf's watches
feeding the controller (resources and their Secrets), restarts, dropped watch streams."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from ovh_s3_operator.model import ROTATE_ANNOTATION
from ovh_s3_operator_sandbox.policies import ALLOW_EVERYTHING
from ovh_s3_operator_sandbox.stack import wait_for

from .conftest import World

pytestmark = pytest.mark.integration

GRANTS = {"grants": [{"bucket": "e2e-bucket", "access": "read"}]}


def reconciled_since(world: World, names: list[str], mark: int) -> bool:
    """Whether the operator read each resource after the ``mark``-th request the emulator served."""
    paths = [r.path for r in list(world.stack.kube.requests)[mark:] if r.method == "GET"]
    return all(any(path.endswith(f"/ovhobjectstorageusers/{name}") for path in paths) for name in names)


def test_lifecycle_through_kopf(world: World) -> None:
    world.start_operator()
    uid = world.create("app", GRANTS)["metadata"]["uid"]
    first = world.wait_ready("app")
    world.patch_spec("app", {"grants": [{"bucket": "e2e-bucket", "access": "readwrite"}]})
    second = world.wait_ready("app", generation=2)
    assert second["status"]["accessKeyId"] == first["status"]["accessKeyId"]
    [user] = world.ovh_users(uid)
    assert "s3:PutObject" in user["policy"]

    # The Secret's own watch events bring it back (drift checks are off here).
    original = world.secret_values("app-s3")
    world.core.delete_namespaced_secret("app-s3", world.namespace)
    wait_for(lambda: world.secret_values("app-s3") == original, 20, what="the Secret to be recreated")
    world.core.patch_namespaced_secret("app-s3", world.namespace, {"data": {"AWS_SECRET_ACCESS_KEY": "dGFtcGVyZWQ="}})
    wait_for(lambda: world.secret_values("app-s3") == original, 20, what="the edited Secret to be restored")
    assert [c["access"] for c in world.ovh_users(uid)[0]["credentials"]] == [original["AWS_ACCESS_KEY_ID"]]  # type: ignore[index]

    world.delete("app")
    world.wait_gone("app")
    assert world.ovh_users() == []
    wait_for(lambda: world.secret("app-s3") is None, 10, what="the Secret collected with its owner")
    events = {e.reason for e in world.core.list_namespaced_event(world.namespace).items}
    assert {"UserCreated", "PolicyApplied", "KeyCreated", "SecretWritten", "Ready", "UserDeleted"} <= events


def test_restart_with_ready_resources_makes_no_writes(world: World) -> None:
    operator = world.start_operator()
    names = ["r1", "r2", "r3"]
    for name in names:
        world.create(name, GRANTS)
    world.assert_consistent(names)
    operator.stop()
    world.stack.ovh.clear_calls()
    before = {name: world.get(name)["metadata"]["resourceVersion"] for name in names}  # type: ignore[index]
    mark = len(world.stack.kube.requests)

    world.start_operator({"OVH_S3_OPERATOR_DRIFT_INTERVAL": "3600"})
    wait_for(lambda: reconciled_since(world, names, mark), 30, what="the restarted operator to look at every resource")
    assert world.stack.ovh.writes() == []
    assert len([c for c in world.stack.ovh.calls() if c.path != "/auth/time"]) <= len(names)
    assert {name: world.get(name)["metadata"]["resourceVersion"] for name in names} == before  # type: ignore[index]


def test_dropped_watches_do_not_lose_events(world: World) -> None:
    world.start_operator()
    stop = threading.Event()

    def keep_dropping() -> None:
        while not stop.wait(0.3):
            world.stack.kube.drop_watches()

    dropper = threading.Thread(target=keep_dropping, daemon=True)
    dropper.start()
    try:
        names = [f"w{i}" for i in range(4)]
        for name in names:
            world.create(name, GRANTS)
        world.assert_consistent(names)
        world.patch_spec("w0", {"grants": [{"bucket": "e2e-bucket", "access": "readwrite"}]})
        world.wait_ready("w0", generation=2)
        world.delete("w1")
        world.assert_consistent(["w0", "w2", "w3"], gone=["w1"])
    finally:
        stop.set()
        dropper.join()


def test_ovh_rate_limit_429s_converge(world: World) -> None:
    world.stack.ovh.rate_limit = 3
    world.start_operator({"OVH_S3_OPERATOR_OVH_REQUESTS_PER_SECOND": "50", "OVH_S3_OPERATOR_OVH_BURST": "50",
                          "OVH_S3_OPERATOR_OVH_MAX_ATTEMPTS": "8"})
    names = [f"rl{i}" for i in range(5)]
    for name in names:
        world.create(name, GRANTS)
    world.assert_consistent(names)
    statuses: list[Any] = [c.status for c in world.stack.ovh.calls()]
    assert statuses.count(429) > 0
    assert statuses.count(429) <= len(statuses) // 2  # the limiter backs off instead of hammering


ADOPTING = {"adopting": {**ALLOW_EVERYTHING["everything"], "allowAdoption": True}}


@pytest.mark.parametrize("world", [{"access": ADOPTING}], indirect=True)
def test_adopt_rotate_and_retain_through_kopf(world: World) -> None:
    """An existing OVH user adopted, its key rotated by the annotation, then kept when the resource goes."""
    user_id = world.stack.ovh.project.add_user("made in the OVH console")
    theirs = world.stack.ovh.project.add_credential(user_id)
    world.start_operator()
    world.create("adopter", {**GRANTS, "userId": user_id, "rotation": {"gracePeriod": "0s"}})
    first = world.wait_ready("adopter")["status"]["accessKeyId"]
    world.patch("adopter", {"metadata": {"annotations": {ROTATE_ANNOTATION: "now"}}})
    wait_for(lambda: world.get("adopter")["status"].get("lastRotationRequest") == "now", 20,  # type: ignore[index]
             what="the rotation")
    second = world.get("adopter")["status"]["accessKeyId"]  # type: ignore[index]
    assert world.secret_values("adopter-s3")["AWS_ACCESS_KEY_ID"] == second  # type: ignore[index]
    wait_for(lambda: {c["access"] for c in world.ovh_users()[0]["credentials"]} == {theirs, second}, 20,
             what="the replaced key to be deleted, the other system's key kept")
    assert first not in (theirs, second)

    world.delete("adopter")
    world.wait_gone("adopter")
    [user] = world.ovh_users()  # kept: the operator did not create it
    assert user["id"] == user_id and {c["access"] for c in user["credentials"]} == {theirs, second}
    events = {e.reason for e in world.core.list_namespaced_event(world.namespace).items}
    assert {"UserAdopted", "KeyRotated", "KeyDeleted", "UserRetained"} <= events
