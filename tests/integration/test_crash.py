"""Crash consistency: SIGKILL the operator right after each OVH write, and at random, then restart it.

After the restart every resource must end with exactly one OVH user and one key, held by its Secret;
deleted resources must end with no OVH user and their finalizer released. A key rotation must end
with the new key in the Secret and the old one gone, whichever of its writes the crash follows.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable

import pytest

from ovh_s3_operator.model import ROTATE_ANNOTATION
from ovh_s3_operator_sandbox.stack import wait_for

from .conftest import World

pytestmark = pytest.mark.integration

GRANTS = {"grants": [{"bucket": "crash-bucket", "access": "read"}]}
NEW_GRANTS = {"grants": [{"bucket": "crash-bucket", "access": "readwrite"}]}


def crash_on(world: World, method: str, path: str, action: Callable[[], object]) -> None:
    """Hang the OVH answer to ``method path`` (the write happens), SIGKILL the operator there, restart it."""
    fault = world.stack.ovh.add_fault(method=method, path=path, hang=True)
    action()
    assert fault.triggered.wait(30), f"the operator never called {method} {path}"
    world.operators[-1].kill()
    world.stack.ovh.remove_fault(fault)
    fault.release()
    world.restart_operator()


@pytest.mark.parametrize(("method", "path"), [
    ("POST", r"/user$"),
    ("POST", r"/user/\d+/policy$"),
    ("POST", r"/user/\d+/s3Credentials$"),
], ids=["after-user-created", "after-policy-applied", "after-key-created"])
def test_crash_during_create(world: World, method: str, path: str) -> None:
    world.start_operator()
    crash_on(world, method, path, lambda: world.create("crashy", GRANTS))
    world.assert_consistent(["crashy"])


def test_crash_during_update(world: World) -> None:
    world.start_operator()
    world.create("crashy", GRANTS)
    world.wait_ready("crashy")
    crash_on(world, "POST", r"/policy$", lambda: world.patch_spec("crashy", NEW_GRANTS))
    obj = world.wait_ready("crashy", generation=2)
    world.assert_consistent(["crashy"])
    [user] = world.ovh_users(obj["metadata"]["uid"])
    assert "s3:PutObject" in user["policy"]


def test_crash_during_delete(world: World) -> None:
    world.start_operator()
    uid = world.create("crashy", GRANTS)["metadata"]["uid"]
    world.wait_ready("crashy")
    crash_on(world, "DELETE", r"/user/\d+$", lambda: world.delete("crashy"))
    world.wait_gone("crashy")
    assert world.ovh_users(uid) == []


def test_crash_after_user_gone_still_releases_the_finalizer(world: World) -> None:
    world.start_operator()
    world.create("crashy", GRANTS)
    world.wait_ready("crashy")
    # Kill while waiting for OVH to finish deleting: the user disappears while the operator is down.
    world.stack.ovh.project.deletion = 3.0
    crash_on(world, "GET", r"/user/\d+$", lambda: world.delete("crashy"))
    world.wait_gone("crashy")
    assert world.ovh_users() == []


def test_crash_while_restoring_a_secret(world: World) -> None:
    world.start_operator()
    world.create("crashy", GRANTS)
    world.wait_ready("crashy")
    crash_on(world, "POST", r"/s3Credentials/\w+/secret$",
             lambda: world.core.delete_namespaced_secret("crashy-s3", world.namespace))
    wait_for(lambda: world.secret("crashy-s3"), 30, what="the Secret to be restored")
    world.assert_consistent(["crashy"])


def test_crash_while_deleting_a_stray_key(world: World) -> None:
    world.start_operator({"OVH_S3_OPERATOR_DRIFT_INTERVAL": "1"})
    obj = world.create("crashy", GRANTS)
    world.wait_ready("crashy")
    user_id = world.wait_ready("crashy")["status"]["userId"]
    world.ovh.post(f"{world.project}/user/{user_id}/s3Credentials")  # someone adds a key by hand
    crash_on(world, "DELETE", r"/s3Credentials/\w+$", lambda: None)
    wait_for(lambda: len(world.ovh_users(obj["metadata"]["uid"])[0]["credentials"]) == 1, 30,
             what="the stray key to be deleted")
    world.assert_consistent(["crashy"])


@pytest.mark.parametrize(("method", "path"), [
    ("POST", r"/s3Credentials$"),
    ("DELETE", r"/s3Credentials/\w+$"),
], ids=["after-new-key-created", "after-old-key-deleted"])
def test_crash_during_rotation(world: World, method: str, path: str) -> None:
    world.start_operator()
    world.create("crashy", {**GRANTS, "rotation": {"gracePeriod": "0s"}})
    old = world.wait_ready("crashy")["status"]["accessKeyId"]
    rotate = {"metadata": {"annotations": {ROTATE_ANNOTATION: "1"}}}
    crash_on(world, method, path, lambda: world.patch("crashy", rotate))
    wait_for(lambda: world.get("crashy")["status"].get("lastRotationRequest") == "1", 30,  # type: ignore[index]
             what="the rotation to complete")
    world.assert_consistent(["crashy"])  # one key, the Secret's: nothing leaked, nothing lost
    assert world.get("crashy")["status"]["accessKeyId"] != old  # type: ignore[index]


def test_random_sigkills(world: World) -> None:
    """~20 resources created, updated and deleted while the operator is killed at random moments (four
    times)."""
    seed = int(os.environ.get("CRASH_SEED", random.randrange(1 << 30)))
    print(f"CRASH_SEED={seed}")
    rng = random.Random(seed)
    world.stack.ovh.latency = 0.02
    names = [f"r{i:02d}" for i in range(20)]
    deleted: set[str] = set()
    world.start_operator()
    for name in names:
        world.create(name, {"grants": [{"bucket": f"bucket-{name}", "access": "read"}]})
    for cycle in range(4):
        time.sleep(rng.uniform(0.3, 1.5))
        world.operators[-1].kill()
        live = [n for n in names if n not in deleted]
        for name in rng.sample(live, 3):
            world.patch_spec(name, {"grants": [{"bucket": f"bucket-{name}", "access": "readwrite"},
                                               {"bucket": f"extra-{cycle}", "access": "read"}]})
        for name in rng.sample(live, 1):
            world.delete(name)
            deleted.add(name)
        world.start_operator()
    world.assert_consistent([n for n in names if n not in deleted], gone=deleted)
