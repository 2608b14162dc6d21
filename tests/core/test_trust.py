"""Nothing a tenant writes in status is trusted: OVH users are acted on only when they carry the marker."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from ovh_s3_operator_sandbox.harness import until

from .conftest import Operator


async def test_a_forged_user_id_is_ignored_and_the_victim_untouched(op: Operator) -> None:
    op.kube.create_namespace("team-b")
    victim_uid = op.create("victim", {"grants": [{"bucket": "team-a-data", "access": "read"}]})["metadata"]["uid"]
    victim = await op.wait_ready("victim")
    [before] = op.ovh_users(victim_uid)

    attacker_uid = op.create("attacker", {}, "team-b")["metadata"]["uid"]
    await op.wait_ready("attacker", namespace="team-b")
    op.patch("attacker", {"status": {"userId": victim["status"]["userId"]}}, "team-b", status=True)
    op.patch("attacker", {"spec": {"description": "go"}}, "team-b")  # any change makes it reconcile
    attacker = await op.wait_ready("attacker", namespace="team-b")

    assert attacker["status"]["userId"] != victim["status"]["userId"]
    [after] = op.ovh_users(victim_uid)
    assert after == before  # same policy, same keys
    values = op.secret_values("attacker-s3", "team-b")
    assert values is not None
    assert values["AWS_ACCESS_KEY_ID"] not in [c["access"] for c in before["credentials"]]
    assert op.ovh_users(attacker_uid)
    await op.wait_events("UserNotOwned", namespace="team-b")

    op.delete("attacker", "team-b")
    await op.wait_gone("attacker", namespace="team-b")
    assert op.ovh_users(victim_uid) == [before]
    assert op.ovh_users(attacker_uid) == []


async def test_a_hand_made_user_is_never_adopted_nor_deleted(op: Operator) -> None:
    admin = op.ovh.project.add_user("platform admin", ["administrator"])
    op.create("app", {})
    await op.wait_ready("app")
    op.patch("app", {"status": {"userId": admin}}, status=True)
    op.delete("app")
    await op.wait_gone("app")
    assert op.ovh.project.user(admin) is not None
    assert op.ovh.project.user(admin)["credentials"] == []  # type: ignore[index]
    assert not op.calls("DELETE", rf"/user/{admin}")


async def test_a_future_creation_time_is_ignored(op: Operator) -> None:
    future = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=365)).strftime("%Y-%m-%dT%H:%M:%SZ")
    uid = op.create("app", {})["metadata"]["uid"]
    await op.wait_ready("app")
    op.patch("app", {"status": {"userRequestedAt": future, "userId": None}}, status=True)
    op.patch("app", {"spec": {"description": "again"}})
    await op.wait_ready("app")
    assert not op.calls("GET", r"/user$")  # no listing: the timestamp said nothing
    # With its status wiped the resource got a new user; the drift check removes the older one
    # (tests/core/test_drift.py).
    assert len(op.ovh_users(uid)) == 2


async def test_a_lost_status_finds_the_user_by_its_marker_when_a_creation_was_recorded(op: Operator) -> None:
    uid = op.create("app", {})["metadata"]["uid"]
    first = await op.wait_ready("app")
    recent = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    op.patch("app", {"status": {"userId": None, "userRequestedAt": recent}}, status=True)
    op.patch("app", {"spec": {"description": "again"}})
    second = await op.wait_ready("app")
    assert second["status"]["userId"] == first["status"]["userId"]
    assert len(op.ovh_users(uid)) == 1
    await op.wait_events("UserAdopted")


async def test_a_forged_key_in_status_is_never_restored_into_a_secret(op: Operator) -> None:
    op.kube.create_namespace("team-b")
    victim = await _ready(op, "victim", "default")
    attacker = await _ready(op, "attacker", "team-b")
    # Nothing in flight: a reconcile that read the status before the forgery would restore the Secret
    # from what it verified (the attacker's own key) and leave the forged status to the next one.
    await op.settle()
    forged = {"userId": victim["status"]["userId"], "accessKeyId": victim["status"]["accessKeyId"]}
    op.patch("attacker", {"status": forged}, "team-b", status=True)
    op.core.delete_namespaced_secret("attacker-s3", "team-b")  # "please restore my Secret"
    await until(lambda: op.secret_values("attacker-s3", "team-b"), what="a Secret for the attacker")
    # (A reconcile that started before the forged status may restore the Secret first; the next one
    # reads the forgery and drops it.)
    await until(lambda: op.get("attacker", "team-b")["status"].get("userId") != victim["status"]["userId"],  # type: ignore[index]
                10, what="the forged user id to be dropped")
    await op.wait_ready("attacker", namespace="team-b")
    values = op.secret_values("attacker-s3", "team-b")
    assert values is not None
    assert values["AWS_ACCESS_KEY_ID"] != victim["status"]["accessKeyId"]
    assert attacker["status"]["userId"] in [u["id"] for u in op.ovh_users(attacker["metadata"]["uid"])]


async def _ready(op: Operator, name: str, namespace: str) -> dict[str, Any]:
    op.create(name, {}, namespace)
    return await op.wait_ready(name, namespace=namespace)


ONLY_OPERATOR_ROLE = {"only-operator": {"namespaceSelector": {}, "buckets": [{"name": "*", "maxAccess": "admin"}],
                                        "roles": ["objectstore_operator"], "regions": ["*"]}}


@pytest.mark.parametrize("forged", [{"userRequestedAt": "2000-01-01T00:00:00Z"}, {"userId": 999999}],
                         ids=["creation-requested", "user-id"])
async def test_a_forged_status_never_gets_a_spec_that_is_not_allowed_a_user(forged: dict[str, Any]) -> None:
    """A status that says a user may exist makes the operator shrink that user to what is allowed; it
    must not make it create one for a spec refused before anything was created."""
    async with Operator(access=ONLY_OPERATOR_ROLE) as op:
        op.create("evil", {"roles": ["objectstore_operator", "administrator"],
                           "grants": [{"bucket": "bucket", "access": "read"}]})
        await op.wait_condition("evil", "False", "AccessDenied")
        op.patch("evil", {"status": forged}, status=True)
        op.patch("evil", {"spec": {"description": "again"}})
        obj = await op.wait_condition("evil", "False", "AccessDenied")  # for the current generation
        assert "administrator" in op.ready(obj)["message"]  # type: ignore[index]
        await op.settle()
        assert op.ovh.project.users() == [] and op.ovh.writes() == []
        assert op.secret("evil-s3") is None


@pytest.mark.parametrize("forged", [999999, "victim"], ids=["missing-user", "another-users"])
async def test_a_forged_user_id_never_makes_the_operator_create_another_user(op: Operator, forged: Any) -> None:
    """Each forged status.userId would otherwise cost a new OVH user (and key), towards the project's quota."""
    if forged == "victim":
        op.create("victim", {})
        forged = (await op.wait_ready("victim"))["status"]["userId"]
    uid = op.create("app", {})["metadata"]["uid"]
    [user_id] = [(await op.wait_ready("app"))["status"]["userId"]]
    for attempt in range(3):
        op.patch("app", {"status": {"userId": forged, "secretName": "elsewhere"}}, status=True)
        op.patch("app", {"metadata": {"annotations": {"poke": str(attempt)}}})
        await op.settle()
        await until(lambda: op.get("app")["status"].get("userId") == user_id,  # type: ignore[index]
                    what="status to name the resource's own user again")
    assert [u["id"] for u in op.ovh_users(uid)] == [user_id]
