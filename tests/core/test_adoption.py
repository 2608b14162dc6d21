"""Adoption of existing OVH users (spec.userId) and spec.deletionPolicy, in-process, including what a
hostile tenant would try."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from ovh_s3_operator import orphans
from ovh_s3_operator.registry import REGISTRY_NAME
from ovh_s3_operator_sandbox.harness import until
from ovh_s3_operator_sandbox.policies import ALLOW_EVERYTHING

from ..support import live_users
from .conftest import Operator

ADOPTING = {"adopt": {**ALLOW_EVERYTHING["everything"], "allowAdoption": True, "allowRetain": True}}


@pytest.fixture
async def op() -> Any:
    async with Operator(access=ADOPTING, orphan_grace=0.0, ovh_consistency_delay=0.05,
                        ovh_request_timeout=0.1) as operator:
        yield operator


def register(op: Operator) -> dict[str, str]:
    config_map = op.kube.get_object("v1", "configmaps", "ovh-s3-operator", REGISTRY_NAME)
    return dict((config_map or {}).get("data") or {})


def entry(op: Operator, kind: str, user_id: int) -> str:
    """The register's key of one user of the operator's own project (user ids are per project)."""
    return f"{kind}.{op.ovh.service_name}.{user_id}"


def handmade(op: Operator, roles: tuple[str, ...] = ("objectstore_operator",)) -> tuple[int, str]:
    """A user made in the OVH console, with a key some other system uses."""
    user_id = op.ovh.project.add_user("made by hand for the backup system", roles)
    return user_id, op.ovh.project.add_credential(user_id)


def user(op: Operator, user_id: int) -> dict[str, Any]:
    """The OVH user, its S3 secrets redacted (assertions may print it)."""
    [found] = [u for u in live_users(op.ovh.project.users()) if u["id"] == user_id]
    return found


async def test_adopting_a_user_gives_it_a_new_key_and_leaves_its_other_keys(op: Operator) -> None:
    user_id, theirs = handmade(op)
    uid = op.create("adopter", {"userId": user_id, "grants": [{"bucket": "backups", "access": "read"}]})[
        "metadata"]["uid"]
    obj = await op.wait_ready("adopter")
    assert (obj["status"]["userId"], obj["status"]["username"]) == (user_id, user(op, user_id)["username"])
    ours = obj["status"]["accessKeyId"]
    assert ours != theirs and {c["access"] for c in user(op, user_id)["credentials"]} == {theirs, ours}
    values = op.secret_values("adopter-s3")
    assert values is not None and values["AWS_ACCESS_KEY_ID"] == ours
    assert "arn:aws:s3:::backups" in user(op, user_id)["policy"]
    assert register(op) == {entry(op, "adopted", user_id): f"default/adopter/{uid}", entry(op, "keys", user_id): ours}
    await op.wait_events("UserAdopted", "KeyCreated", "SecretWritten")

    # After a restart the register, not status, says which key is the operator's.
    await op.restart()
    op.app.controller.enqueue(("default", "adopter"))  # type: ignore[union-attr]
    await op.settle()
    assert {c["access"] for c in user(op, user_id)["credentials"]} == {theirs, ours}

    # Deleting the resource keeps the user (it was not the operator's); the key the operator issued goes.
    op.delete("adopter")
    await op.wait_gone("adopter")
    assert [c["access"] for c in user(op, user_id)["credentials"]] == [theirs]
    assert register(op) == {}
    await op.wait_events("UserReleased")


async def test_an_adopted_user_is_deleted_only_with_deletion_policy_delete(op: Operator) -> None:
    user_id, _ = handmade(op)
    op.create("adopter", {"userId": user_id, "deletionPolicy": "Delete"})
    await op.wait_ready("adopter")
    op.delete("adopter")
    await op.wait_gone("adopter")
    assert op.ovh_users() == []
    assert register(op) == {}


async def test_adoption_needs_an_access_policy_that_allows_it() -> None:
    async with Operator() as op:  # allows everything but adoption
        user_id, theirs = handmade(op)
        op.create("adopter", {"userId": user_id})
        obj = await op.wait_condition("adopter", "False", "AccessDenied")
        assert "spec.userId: namespace default may not adopt existing OVH users" in op.ready(obj)["message"]  # type: ignore[index]
        assert op.ovh.writes() == [] and [c["access"] for c in user(op, user_id)["credentials"]] == [theirs]


async def test_a_forged_status_opens_no_adoption_for_a_spec_that_is_not_allowed() -> None:
    only_some = {"adopt": {**ADOPTING["adopt"], "buckets": [{"name": "ok-*", "maxAccess": "admin"}]}}
    async with Operator(access=only_some) as op:
        user_id, theirs = handmade(op)
        op.create("grab", {"userId": user_id, "grants": [{"bucket": "ok-1", "access": "read"},
                                                         {"bucket": "forbidden", "access": "read"}]})
        await op.wait_condition("grab", "False", "AccessDenied")
        assert op.app is not None
        reconciles = op.app.controller.reconciles
        op.patch("grab", {"status": {"userId": user_id}}, status=True)
        op.patch("grab", {"metadata": {"annotations": {"poke": "1"}}})
        await until(lambda: op.app is not None and op.app.controller.reconciles > reconciles, what="a reconcile")
        await op.settle()
        assert op.ready(op.get("grab"))["reason"] == "AccessDenied"  # type: ignore[index]
        assert register(op) == {} and op.ovh.writes() == []
        assert [c["access"] for c in user(op, user_id)["credentials"]] == [theirs]


async def test_a_user_that_does_not_exist(op: Operator) -> None:
    op.create("adopter", {"userId": 424242})
    obj = await op.wait_condition("adopter", "False", "AdoptionRefused")
    assert "the OVH project has no user 424242" in op.ready(obj)["message"]  # type: ignore[index]
    op.delete("adopter")
    await op.wait_gone("adopter")


async def test_another_resources_user_cannot_be_adopted(op: Operator) -> None:
    owner = op.create("owner", {})
    user_id = (await op.wait_ready("owner"))["status"]["userId"]
    op.create("thief", {"userId": user_id, "deletionPolicy": "Delete"})
    obj = await op.wait_condition("thief", "False", "AdoptionRefused")
    assert f"OVH user {user_id} was created by this operator for another resource" in \
        op.ready(obj)["message"]  # type: ignore[index]
    # Pointing status at the user changes nothing: status is not proof.
    op.patch("thief", {"status": {"userId": user_id}}, status=True)
    op.patch("thief", {"metadata": {"annotations": {"try": "again"}}})
    await op.settle()
    op.delete("thief")
    await op.wait_gone("thief")
    await op.assert_consistent(["owner"])
    assert owner["metadata"]["uid"] in user(op, user_id)["description"]


async def test_two_resources_cannot_hold_the_same_user(op: Operator) -> None:
    user_id, _ = handmade(op)
    op.create("first", {"userId": user_id})
    first = await op.wait_ready("first")
    op.create("second", {"userId": user_id, "deletionPolicy": "Delete"})
    obj = await op.wait_condition("second", "False", "AdoptionRefused")
    assert f"OVH user {user_id} is already adopted by default/first" in op.ready(obj)["message"]  # type: ignore[index]
    op.delete("second")  # Delete applies only to a user the resource holds
    await op.wait_gone("second")
    assert user(op, user_id)["status"] == "ok"
    assert op.secret_values("first-s3")["AWS_ACCESS_KEY_ID"] == first["status"]["accessKeyId"]  # type: ignore[index]

    op.delete("first")  # once the first lets go, another may adopt it
    await op.wait_gone("first")
    op.create("third", {"userId": user_id})
    await op.wait_ready("third")


async def test_a_user_with_roles_the_namespace_may_not_use_is_refused(op: Operator) -> None:
    op.set_access_policy("adopt", {**ADOPTING["adopt"], "roles": ["objectstore_operator"]})
    user_id, _ = handmade(op, ("administrator",))
    op.create("adopter", {"userId": user_id})
    obj = await op.wait_condition("adopter", "False", "AccessDenied")
    assert "has roles this namespace may not use (administrator)" in op.ready(obj)["message"]  # type: ignore[index]
    assert user(op, user_id)["roles"] == ["administrator"] and len(user(op, user_id)["credentials"]) == 1
    assert register(op) == {}


async def test_spec_user_id_cannot_change(op: Operator) -> None:
    user_id, _ = handmade(op)
    op.create("adopter", {"userId": user_id})
    await op.wait_ready("adopter")
    other, _ = handmade(op)
    with pytest.raises(ApiException) as refused:
        op.patch_spec("adopter", {"userId": other})
    assert refused.value.status == 422 and "spec.userId is set when the resource is created" in str(refused.value.body)
    op.create("plain", {})
    with pytest.raises(ApiException):
        op.patch_spec("plain", {"userId": other})


async def abandoned(op: Operator, user_id: int) -> str:
    """Adopt the user with resource "a", then remove its finalizer and delete it; returns the key it had."""
    op.create("a", {"userId": user_id})
    key: str = (await op.wait_ready("a"))["status"]["accessKeyId"]
    op.patch("a", {"metadata": {"finalizers": None}})
    op.delete("a")
    await op.wait_gone("a")
    return key


async def test_the_sweep_lets_go_of_a_user_whose_holder_went_without_its_finalizer(op: Operator) -> None:
    user_id, theirs = handmade(op)
    key = await abandoned(op, user_id)
    assert op.app is not None
    assert await orphans.sweep(op.app.controller.ctx) == {}  # deletes no user: it is not the operator's
    assert [c["access"] for c in user(op, user_id)["credentials"]] == [theirs]  # the former tenant's key is gone
    assert not [k for k in register(op) if k.endswith(f".{user_id}")]
    await op.wait_events("OrphanReleased")
    assert key != theirs


async def test_a_user_whose_holder_went_without_its_finalizer_is_adopted_without_the_old_keys(op: Operator) -> None:
    op.label_namespace("team-b")
    user_id, theirs = handmade(op)
    old = await abandoned(op, user_id)
    op.create("b", {"userId": user_id}, namespace="team-b")
    new = (await op.wait_ready("b", namespace="team-b"))["status"]["accessKeyId"]
    assert sorted(c["access"] for c in user(op, user_id)["credentials"]) == sorted([theirs, new])
    assert old not in (theirs, new)
    await op.wait_events("KeyRevoked", namespace="team-b")
    op.delete("b", namespace="team-b")
    await op.wait_gone("b", namespace="team-b")
    assert [c["access"] for c in user(op, user_id)["credentials"]] == [theirs]


async def retained(op: Operator) -> tuple[dict[str, Any], int, str]:
    """A resource "kept" with deletionPolicy Retain, Ready then deleted: it, its user id and its key."""
    op.create("kept", {"deletionPolicy": "Retain"})
    obj = await op.wait_ready("kept")
    user_id, key = obj["status"]["userId"], obj["status"]["accessKeyId"]
    op.delete("kept")
    await op.wait_gone("kept")
    return obj, user_id, key


async def test_a_retained_user_whose_adopter_went_without_its_finalizer_can_be_adopted_again(op: Operator) -> None:
    _, user_id, key = await retained(op)
    op.ovh.project.delete_credential(user_id, key)
    await abandoned(op, user_id)  # adopted by "a", which then went without its finalizer
    op.create("again", {"userId": user_id})
    obj = await op.wait_ready("again")
    assert [c["access"] for c in user(op, user_id)["credentials"]] == [obj["status"]["accessKeyId"]]
    assert register(op)[entry(op, "adopted", user_id)] == f"default/again/{obj['metadata']['uid']}"


@pytest.mark.parametrize("wiped", [False, True], ids=["status-kept", "status-wiped"])
async def test_withdrawing_adoption_lets_the_user_go(op: Operator, wiped: bool) -> None:
    user_id, theirs = handmade(op)
    op.create("adopter", {"userId": user_id})
    ours = (await op.wait_ready("adopter"))["status"]["accessKeyId"]
    if wiped:  # the register, not status, says the resource holds the user
        op.patch("adopter", {"status": {"userId": None, "accessKeyId": None}}, status=True)
    op.set_access_policy("adopt", ALLOW_EVERYTHING["everything"])
    obj = await op.wait_condition("adopter", "False", "AccessDenied")
    assert "userId" not in obj["status"]
    await until(lambda: op.secret("adopter-s3") is None, what="the Secret to be deleted")
    assert register(op) == {}
    assert [c["access"] for c in user(op, user_id)["credentials"]] == [theirs]  # the operator's key is revoked
    assert ours != theirs
    await op.wait_events("UserReleased")


async def test_retain_leaves_the_user_and_the_sweep_spares_it(op: Operator) -> None:
    obj, user_id, key = await retained(op)
    assert [c["access"] for c in user(op, user_id)["credentials"]] == [key]
    assert register(op)[entry(op, "retained", user_id)].startswith(f"default/kept/{obj['metadata']['uid']} ")
    await op.wait_events("UserRetained")
    assert op.app is not None
    assert await orphans.sweep(op.app.controller.ctx) == {}
    assert user(op, user_id)["status"] == "ok"

    # The retained user can be adopted again once its old keys are gone; the register then says so.
    op.create("again", {"userId": user_id})
    obj = await op.wait_condition("again", "False", "AdoptionRefused")
    assert "was retained with S3 keys its former holders may still have" in op.ready(obj)["message"]  # type: ignore[index]
    op.ovh.project.delete_credential(user_id, key)
    obj = await op.wait_ready("again", timeout=10)
    assert register(op) == {entry(op, "adopted", user_id): f"default/again/{obj['metadata']['uid']}",
                            entry(op, "keys", user_id): obj["status"]["accessKeyId"]}
    assert await orphans.sweep(op.app.controller.ctx) == {}


async def test_an_adopted_user_key_rotation_deletes_only_the_key_it_replaced(op: Operator) -> None:
    user_id, theirs = handmade(op)
    op.create("adopter", {"userId": user_id, "rotation": {"gracePeriod": "0s"}})
    first = (await op.wait_ready("adopter"))["status"]["accessKeyId"]
    op.patch("adopter", {"metadata": {"annotations": {"s3.ovh-operator.dev/rotate": "1"}}})
    obj = await until(lambda: (o := op.get("adopter")) and o["status"].get("lastRotationRequest") == "1" and o,
                      what="the rotation")
    second = obj["status"]["accessKeyId"]
    await until(lambda: {c["access"] for c in user(op, user_id)["credentials"]} == {theirs, second},
                what="the replaced key to be deleted")
    assert first not in (theirs, second)


async def test_retain_needs_an_access_policy_that_allows_it() -> None:
    async with Operator() as op:  # allows everything but Retain
        op.create("kept", {"deletionPolicy": "Retain"})
        obj = await op.wait_condition("kept", "False", "AccessDenied")
        assert "spec.deletionPolicy Retain" in op.ready(obj)["message"]  # type: ignore[index]
        assert op.ovh.writes() == []


async def test_retain_withdrawn_before_deletion_deletes_the_user(op: Operator) -> None:
    op.create("kept", {"deletionPolicy": "Retain"})
    await op.wait_ready("kept")
    op.set_access_policy("adopt", ALLOW_EVERYTHING["everything"])
    await op.wait_condition("kept", "False", "AccessDenied")
    op.delete("kept")
    await op.wait_gone("kept")
    assert op.ovh_users() == [] and register(op) == {}


async def test_a_failed_secret_write_during_an_adopted_rotation_leaks_no_key(op: Operator) -> None:
    user_id, theirs = handmade(op)
    op.create("adopter", {"userId": user_id, "rotation": {"gracePeriod": "0s"}})
    first = (await op.wait_ready("adopter"))["status"]["accessKeyId"]
    op.kube.add_fault(method="PATCH", plural="secrets", times=1)
    op.patch("adopter", {"metadata": {"annotations": {"s3.ovh-operator.dev/rotate": "1"}}})
    obj = await until(lambda: (o := op.get("adopter")) and o["status"].get("lastRotationRequest") == "1"
                      and op.ready(o)["status"] == "True" and o, what="the rotation")  # type: ignore[index]
    current = obj["status"]["accessKeyId"]
    assert current != first and op.secret_values("adopter-s3")["AWS_ACCESS_KEY_ID"] == current  # type: ignore[index]
    await until(lambda: {c["access"] for c in user(op, user_id)["credentials"]} == {theirs, current},
                what="no key but the other system's and the Secret's")


async def test_a_lost_key_creation_for_an_adopted_user_is_found_and_deleted(op: Operator) -> None:
    user_id, theirs = handmade(op)
    op.ovh.add_fault(method="POST", path=r"/s3Credentials$", status=502, after=True)
    op.create("adopter", {"userId": user_id})
    current = (await op.wait_ready("adopter"))["status"]["accessKeyId"]
    await until(lambda: {c["access"] for c in user(op, user_id)["credentials"]} == {theirs, current},
                what="the key whose answer was lost to be deleted")
    assert register(op)[entry(op, "keys", user_id)] == current and entry(op, "creating", user_id) not in register(op)


async def test_the_sweep_finds_a_resource_whose_name_the_description_cut_short(op: Operator) -> None:
    long_name = "n" * 200
    op.create(long_name, {})
    obj = await op.wait_ready(long_name)
    description = user(op, obj["status"]["userId"])["description"]
    assert long_name not in description and len(description) == 255  # the name was cut
    assert op.app is not None
    assert await orphans.sweep(op.app.controller.ctx) == {}
    # and nobody can adopt it: it is another resource's
    op.create("thief", {"userId": obj["status"]["userId"]})
    await op.wait_condition("thief", "False", "AdoptionRefused")
