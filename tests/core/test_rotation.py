"""Key rotation in-process: on request (the annotation) and on schedule, the grace period of the
previous key, and crashes at each step."""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

import pytest

from ovh_s3_operator.model import ROTATE_ANNOTATION, parse_time
from ovh_s3_operator_sandbox.harness import until

from .conftest import Operator

GRACE = {"rotation": {"gracePeriod": "1h"}}


def keys(op: Operator, uid: str) -> set[str]:
    [user] = op.ovh_users(uid)
    return {credential["access"] for credential in user["credentials"]}


def request_rotation(op: Operator, name: str, value: str) -> None:
    op.patch(name, {"metadata": {"annotations": {ROTATE_ANNOTATION: value}}})


async def rotated(op: Operator, name: str, value: str) -> dict[str, Any]:
    """The resource once the rotation asked for with ``value`` is done and it is Ready again."""
    async def done() -> dict[str, Any] | None:
        obj = op.get(name)
        condition = op.ready(obj)
        ready = condition is not None and condition["status"] == "True"
        return obj if ready and obj is not None and obj["status"].get("lastRotationRequest") == value else None
    return await until(done, what=f"rotation {value} of {name}")


def shift_clock(op: Operator, seconds: float) -> None:
    """Move the operator's wall clock (the one status times are compared with) forward."""
    assert op.app is not None
    ctx = op.app.controller.ctx
    before = ctx.now
    ctx.now = lambda: before() + datetime.timedelta(seconds=seconds)


async def next_look(op: Operator, name: str, seconds: float) -> None:
    """The controller's next look at the resource is due in ``seconds`` (once the reconciles its own
    writes cause are over)."""
    assert op.app is not None
    controller = op.app.controller
    due = await until(lambda: (d := controller.due(("default", name))) is not None and d > 10 and d,
                      what="the next look to be scheduled")
    assert seconds - 60 < due <= seconds


def secret_key(op: Operator, name: str) -> str:
    values = op.secret_values(f"{name}-s3")
    assert values is not None
    return values["AWS_ACCESS_KEY_ID"]


async def test_the_annotation_rotates_the_key_and_keeps_the_previous_one_for_the_grace_period(op: Operator) -> None:
    uid = op.create("app", GRACE)["metadata"]["uid"]
    first = (await op.wait_ready("app"))["status"]
    old = first["accessKeyId"]
    issued = parse_time(first["lastRotationTime"])
    assert issued is not None and "nextRotationTime" not in first  # no schedule without an interval

    request_rotation(op, "app", "2026-11-30")
    status = (await rotated(op, "app", "2026-11-30"))["status"]
    new = status["accessKeyId"]
    assert new != old and secret_key(op, "app") == new
    assert keys(op, uid) == {old, new}  # the previous key still works meanwhile
    assert status["previousAccessKeyId"] == old
    rotation = parse_time(status["lastRotationTime"])
    assert rotation is not None and rotation >= issued
    assert parse_time(status["previousAccessKeyExpiryTime"]) == rotation + datetime.timedelta(hours=1)
    await op.wait_events("KeyCreated", "SecretWritten", "KeyRotated")

    # The controller comes back when the grace period ends (there is no drift check here).
    await next_look(op, "app", 3600)

    shift_clock(op, 3601)
    assert op.app is not None
    op.app.controller.enqueue(("default", "app"))
    await until(lambda: keys(op, uid) == {new}, what="the previous key to be deleted")
    obj = await until(lambda: (o := op.get("app")) and "previousAccessKeyId" not in o["status"] and o,
                      what="the previous key to leave the status")
    assert obj["status"]["accessKeyId"] == new and secret_key(op, "app") == new
    await op.wait_events("KeyDeleted")


async def test_the_same_annotation_value_does_not_rotate_again(op: Operator) -> None:
    uid = op.create("app", {"rotation": {"gracePeriod": "0s"}})["metadata"]["uid"]
    await op.wait_ready("app")
    request_rotation(op, "app", "one")
    status = (await rotated(op, "app", "one"))["status"]
    await until(lambda: len(keys(op, uid)) == 1, what="the previous key to be deleted at once")
    op.patch("app", {"metadata": {"annotations": {"unrelated": "change"}}})
    await op.settle()
    assert op.get("app")["status"]["accessKeyId"] == status["accessKeyId"]  # type: ignore[index]
    assert keys(op, uid) == {status["accessKeyId"]}


async def test_a_resource_created_with_the_annotation_gets_one_key(op: Operator) -> None:
    op.create_body({"apiVersion": "s3.ovh-operator.dev/v1alpha1", "kind": "OVHObjectStorageUser",
                    "metadata": {"name": "app", "annotations": {ROTATE_ANNOTATION: "x"}}, "spec": {}})
    obj = await rotated(op, "app", "x")
    await op.assert_consistent(["app"])
    assert "previousAccessKeyId" not in obj["status"]


async def test_a_rotation_during_the_grace_period_deletes_the_oldest_key(op: Operator) -> None:
    uid = op.create("app", GRACE)["metadata"]["uid"]
    first = (await op.wait_ready("app"))["status"]["accessKeyId"]
    request_rotation(op, "app", "1")
    second = (await rotated(op, "app", "1"))["status"]["accessKeyId"]
    request_rotation(op, "app", "2")
    status = (await rotated(op, "app", "2"))["status"]
    third = status["accessKeyId"]
    assert keys(op, uid) == {second, third} and first not in {second, third}
    assert status["previousAccessKeyId"] == second and secret_key(op, "app") == third


async def test_scheduled_rotation(op: Operator) -> None:
    uid = op.create("app", {"rotation": {"interval": "720h", "gracePeriod": "0s"}})["metadata"]["uid"]
    status = (await op.wait_ready("app"))["status"]
    issued = parse_time(status["lastRotationTime"])
    assert issued is not None
    assert parse_time(status["nextRotationTime"]) == issued + datetime.timedelta(hours=720)
    await next_look(op, "app", 720 * 3600)

    shift_clock(op, 720 * 3600 + 1)
    assert op.app is not None
    op.app.controller.enqueue(("default", "app"))
    obj = await until(lambda: (o := op.get("app")) and o["status"]["accessKeyId"] != status["accessKeyId"] and o,
                      what="the scheduled rotation")
    await until(lambda: keys(op, uid) == {obj["status"]["accessKeyId"]}, what="the previous key to be deleted")
    rotation = parse_time(obj["status"]["lastRotationTime"])
    assert rotation is not None and rotation > issued + datetime.timedelta(hours=719)
    await until(lambda: parse_time(op.get("app")["status"]["nextRotationTime"])  # type: ignore[index]
                == rotation + datetime.timedelta(hours=720), what="the next rotation to be scheduled")


async def test_a_shorter_interval_applies_to_the_current_key(op: Operator) -> None:
    op.create("app", {"rotation": {"interval": "720h"}})
    status = (await op.wait_ready("app"))["status"]
    op.patch_spec("app", {"rotation": {"interval": "24h"}})
    obj = await op.wait_ready("app")
    issued = parse_time(status["lastRotationTime"])
    assert issued is not None
    assert parse_time(obj["status"]["nextRotationTime"]) == issued + datetime.timedelta(hours=24)
    assert obj["status"]["accessKeyId"] == status["accessKeyId"]


async def test_crash_after_the_new_key_is_created_leaves_no_stray_key(op: Operator) -> None:
    uid = op.create("app", GRACE)["metadata"]["uid"]
    old = (await op.wait_ready("app"))["status"]["accessKeyId"]
    # The key is created but the answer is lost: the operator cannot know its id.
    op.ovh.add_fault(method="POST", path=r"/s3Credentials$", status=502, after=True)
    request_rotation(op, "app", "1")
    status = (await rotated(op, "app", "1"))["status"]
    assert keys(op, uid) == {old, status["accessKeyId"]}  # the lost key was found and deleted
    assert status["previousAccessKeyId"] == old and secret_key(op, "app") == status["accessKeyId"]


async def test_crash_between_recording_the_new_key_and_writing_the_secret(op: Operator) -> None:
    uid = op.create("app", GRACE)["metadata"]["uid"]
    old = (await op.wait_ready("app"))["status"]["accessKeyId"]
    refused = op.kube.add_fault(method="PATCH", plural="secrets", status=500, times=-1)
    request_rotation(op, "app", "1")
    recorded = await until(lambda: (o := op.get("app")) and o["status"].get("previousAccessKeyId") == old and o,
                           what="the new key to be recorded")
    new = recorded["status"]["accessKeyId"]
    assert secret_key(op, "app") == old  # the Secret could not be written yet
    await op.stop()  # the operator dies here; what it knew in memory is lost
    op.kube.remove_fault(refused)
    await op.start()
    status = (await rotated(op, "app", "1"))["status"]
    assert (status["accessKeyId"], status["previousAccessKeyId"]) == (new, old)
    assert secret_key(op, "app") == new and keys(op, uid) == {old, new}


async def test_crash_after_the_previous_key_was_deleted(op: Operator) -> None:
    uid = op.create("app", GRACE)["metadata"]["uid"]
    await op.wait_ready("app")
    request_rotation(op, "app", "1")
    new = (await rotated(op, "app", "1"))["status"]["accessKeyId"]
    refused = op.kube.add_fault(method="PATCH", plural="ovhobjectstorageusers", subresource="status", times=-1)
    shift_clock(op, 3601)
    assert op.app is not None
    op.app.controller.enqueue(("default", "app"))
    await until(lambda: keys(op, uid) == {new}, what="the previous key to be deleted")
    await op.stop()
    op.kube.remove_fault(refused)
    await op.start()
    shift_clock(op, 3601)
    await until(lambda: "previousAccessKeyId" not in op.get("app")["status"],  # type: ignore[index]
                what="status to forget the deleted key")
    await op.assert_consistent(["app"])


@pytest.mark.parametrize("op", [{"rotation_request_interval": 60.0}], indirect=True)
async def test_requested_rotations_are_spaced(op: Operator) -> None:
    op.create("app", {"rotation": {"gracePeriod": "0s"}})
    first = (await op.wait_ready("app"))["status"]["accessKeyId"]
    request_rotation(op, "app", "1")  # right after the key was issued: waits for the spacing
    await next_look(op, "app", 60)
    assert op.get("app")["status"]["accessKeyId"] == first  # type: ignore[index]
    shift_clock(op, 61)
    assert op.app is not None
    op.app.controller.enqueue(("default", "app"))
    status = (await rotated(op, "app", "1"))["status"]
    assert status["accessKeyId"] != first


@pytest.mark.parametrize("op", [{"rotation_request_interval": 60.0}], indirect=True)
@pytest.mark.parametrize("spec", [{"rotation": {"gracePeriod": "0s"}},
                                  {"rotation": {"gracePeriod": "0s", "interval": "1h"}}],
                         ids=["requested", "scheduled"])
async def test_a_past_issue_time_written_into_status_makes_no_rotation_due(op: Operator, spec: dict[str, Any]) -> None:
    """Setting status.lastRotationTime back must not buy a rotation per edit (each costs OVH calls)."""
    op.create("app", spec)
    first = (await op.wait_ready("app"))["status"]["accessKeyId"]
    for value in ("a", "b", "c"):
        op.patch("app", {"status": {"lastRotationTime": "2000-01-01T00:00:00Z"}}, status=True)
        request_rotation(op, "app", value)
        await op.settle()
    assert op.get("app")["status"]["accessKeyId"] == first  # type: ignore[index]
    assert len(op.calls("POST", r"/s3Credentials$")) == 1


async def test_times_written_into_status_cause_no_busy_loop(op: Operator) -> None:
    op.create("app", {"rotation": {"interval": "24h"}})
    await op.wait_ready("app")
    op.patch("app", {"status": {"nextRotationTime": "2000-01-01T00:00:00Z",
                                "lastRotationTime": "2100-01-01T00:00:00Z"}}, status=True)
    op.patch("app", {"metadata": {"annotations": {"touch": "1"}}})
    await op.settle()
    assert op.app is not None
    before = op.app.controller.reconciles
    await asyncio.sleep(0.5)
    assert op.app.controller.reconciles - before <= 1
    status = op.get("app")["status"]  # type: ignore[index]
    issued = parse_time(status["lastRotationTime"])
    assert issued is not None and issued.year < 2100  # a time in the future is not believed
    assert parse_time(status["nextRotationTime"]) == issued + datetime.timedelta(hours=24)
