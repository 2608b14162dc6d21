"""Several OVH projects in-process: spec.projectRef, access to projects, OVHProject credentials (missing,
rotated, OAuth2), isolation of projects whose user ids coincide, deletion when a project is gone."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from ovh_s3_operator import orphans
from ovh_s3_operator.model import FINALIZER
from ovh_s3_operator_sandbox.harness import until
from ovh_s3_operator_sandbox.ovh.model import OVHProject
from ovh_s3_operator_sandbox.stack import OPERATOR_NAMESPACE

from ..support import live_users, owner_uid
from .conftest import Operator

EVERYTHING = {"namespaceSelector": {}, "buckets": [{"name": "*", "maxAccess": "admin"}],
              "roles": ["objectstore_operator"], "regions": ["*"]}
SECOND = {"projectRef": {"name": "second"}}


@pytest.fixture
async def two() -> AsyncIterator[tuple[Operator, OVHProject]]:
    """The operator's own project, and a second project of the same account reached through an OVHProject
    with a consumer key of its own (for that project only); every namespace may use both."""
    async with Operator(access={"all": {**EVERYTHING, "projects": ["*"], "defaultProject": True}},
                        orphan_grace=0.0, ovh_consistency_delay=0.05, ovh_request_timeout=0.1) as op:
        second = op.ovh.add_project()
        op.add_ovh_project("second", service_name=second.service_name)
        await op.wait_project("second", "True", "CredentialsValid")
        yield op, second


def users(project: OVHProject, uid: str | None = None) -> list[dict[str, Any]]:
    return live_users(project.users(), uid)


def deletion_message(op: Operator, name: str) -> str | None:
    """The Ready message of a resource whose deletion is waiting."""
    condition = op.ready(op.get(name)) or {}
    message = str(condition.get("message", ""))
    return message if message.startswith("Cannot delete") else None


async def test_a_resource_naming_a_project_gets_its_user_there(two: tuple[Operator, OVHProject]) -> None:
    op, second = two
    uid = op.create("app", SECOND)["metadata"]["uid"]
    obj = await op.wait_ready("app")
    [user] = users(second, uid)
    assert users(op.ovh.project) == []
    assert obj["status"]["userId"] == user["id"]
    assert (obj["status"]["project"], obj["status"]["serviceName"]) == ("second", second.service_name)
    values = op.secret_values("app-s3")
    assert values is not None and values["AWS_ACCESS_KEY_ID"] == user["credentials"][0]["access"]
    assert not op.calls("POST", rf"^/cloud/project/{op.ovh.service_name}/")

    op.delete("app")
    await op.wait_gone("app")
    assert users(second) == []


async def test_the_same_user_id_in_two_projects_is_never_confused(two: tuple[Operator, OVHProject]) -> None:
    op, second = two
    mine = op.create("mine", {})["metadata"]["uid"]
    theirs = op.create("theirs", SECOND)["metadata"]["uid"]
    first, other = await op.wait_ready("mine"), await op.wait_ready("theirs")
    assert first["status"]["userId"] == other["status"]["userId"]  # ids count from 100001 in each project
    assert "project" not in first["status"] and first["status"]["serviceName"] == op.ovh.service_name

    # OVH deletes the second project's user: only that resource gets a new user, in its project.
    second.delete_user_now(other["status"]["userId"])
    op.patch_spec("theirs", {"description": "again"})
    obj = await op.wait_condition("theirs", "True", "Reconciled")
    assert [u["id"] for u in users(second, theirs)] == [obj["status"]["userId"]] != [other["status"]["userId"]]
    assert [u["id"] for u in users(op.ovh.project, mine)] == [first["status"]["userId"]]

    op.delete("mine")
    await op.wait_gone("mine")
    assert users(op.ovh.project) == [] and [owner_uid(u) for u in users(second)] == [theirs]


async def test_orphans_are_swept_in_each_project(two: tuple[Operator, OVHProject]) -> None:
    op, second = two
    for name, spec in (("mine", {}), ("theirs", SECOND), ("kept", SECOND)):
        op.create(name, spec)
        await op.wait_ready(name)
    ids = {name: op.get(name)["status"]["userId"] for name in ("mine", "theirs")}  # type: ignore[index]
    await op.stop()
    for name in ("mine", "theirs"):  # finalizers removed by hand while the operator was down
        op.delete(name)
        op.patch(name, {"metadata": {"finalizers": None}})
    await op.start()
    assert op.app is not None
    assert await orphans.sweep(op.app.controller.ctx) == {"": [ids["mine"]], "second": [ids["theirs"]]}
    await until(lambda: not users(op.ovh.project) and len(users(second)) == 1, what="the orphans to go")
    assert [owner_uid(u) for u in users(second)] == [op.get("kept")["metadata"]["uid"]]  # type: ignore[index]


async def test_a_project_the_namespace_may_not_use_is_refused_before_any_call() -> None:
    team_a = {**EVERYTHING, "namespaceSelector": {"matchLabels": {"team": "a"}}, "projects": ["team-a-*"]}
    async with Operator(access={"team-a": team_a}, namespace="team-a") as op:
        op.label_namespace("team-a", team="a")
        second = op.ovh.add_project()
        op.add_ovh_project("team-b-prod", service_name=second.service_name)
        op.add_ovh_project("team-a-prod")
        await op.wait_project("team-b-prod", "True")
        op.ovh.clear_calls()
        op.create("greedy", {"projectRef": {"name": "team-b-prod"}})
        op.create("plain", {})  # policies that list projects allow the operator's own only if they say so
        # spec.userId where adoption is not allowed either: the same answer whether the project exists or not
        op.create("probe", {"projectRef": {"name": "team-b-prod"}, "userId": 100001})
        op.create("probe-missing", {"projectRef": {"name": "no-such-project"}, "userId": 100001})
        for name, named in (("greedy", "project team-b-prod (spec.projectRef)"),
                            ("plain", "the operator's own project (no spec.projectRef"),
                            ("probe", "may not adopt"), ("probe-missing", "may not adopt")):
            obj = await op.wait_condition(name, "False", "AccessDenied")
            message = op.ready(obj)["message"]  # type: ignore[index]
            assert named in message and "Access policies selecting namespace team-a: team-a" in message
            assert "finalizers" not in obj["metadata"] and "serviceName" not in obj["status"]
        assert op.ovh.writes() == []

        # A status forged to say a user exists there tells nothing either: same answer, nothing recorded.
        messages = set()
        for name, project in (("forger", "team-b-prod"), ("forger-missing", "no-such-project")):
            op.create(name, {"projectRef": {"name": project}})
            await op.wait_condition(name, "False", "AccessDenied")
            op.patch(name, {"status": {"userId": 100001, "userRequestedAt": "2000-01-01T00:00:00Z"}}, status=True)
            op.patch(name, {"spec": {"description": "again"}})
            obj = await op.wait_condition(name, "False", "AccessDenied")
            messages.add(op.ready(obj)["message"].replace(project, "P"))  # type: ignore[index]
            assert "finalizers" not in obj["metadata"] and "serviceName" not in obj["status"]
        assert len(messages) == 1
        assert op.ovh.writes() == []

        # Nor deleting, with the operator's finalizer put on by the tenant: the same answer, no call there.
        second_calls = len([c for c in op.ovh.calls() if second.service_name in c.path])
        for name in ("forger", "forger-missing"):
            op.patch(name, {"metadata": {"finalizers": [FINALIZER]}})
            op.patch(name, {"status": {"project": "team-b-prod", "serviceName": second.service_name}}, status=True)
            op.delete(name)
            await op.wait_gone(name)
        await op.wait_events("UserLeftToSweep")
        assert len([c for c in op.ovh.calls() if second.service_name in c.path]) == second_calls

        op.create("fine", {"projectRef": {"name": "team-a-prod"}})
        await op.wait_ready("fine")


async def test_a_project_taken_away_revokes_the_keys_there(two: tuple[Operator, OVHProject]) -> None:
    op, second = two
    uid = op.create("app", SECOND)["metadata"]["uid"]
    await op.wait_ready("app")
    op.set_access_policy("all", {**EVERYTHING, "projects": ["other-*"], "defaultProject": True})
    obj = await op.wait_condition("app", "False", "AccessDenied")
    assert "project second (spec.projectRef)" in op.ready(obj)["message"]  # type: ignore[index]
    [user] = users(second, uid)
    assert user["credentials"] == [] and op.secret("app-s3") is None
    op.set_access_policy("all", {**EVERYTHING, "projects": ["*"]})
    await op.wait_ready("app")
    assert [u["id"] for u in users(second, uid)] == [user["id"]]  # the same user, a new key


async def test_a_missing_project_then_a_missing_secret_then_both(op: Operator) -> None:
    op.create("app", {"projectRef": {"name": "later"}})
    obj = await op.wait_condition("app", "False", "OVHProjectNotFound")
    assert "OVHProject later does not exist" in op.ready(obj)["message"]  # type: ignore[index]
    assert op.ovh.writes() == [] and "finalizers" not in obj["metadata"]

    op.set_ovh_project("later", op.ovh.service_name, "later-ovh", op.ovh.url)
    project = await op.wait_project("later", "False", "OVHCredentialsMissing")
    missing = f"Secret {OPERATOR_NAMESPACE}/later-ovh does not exist"
    assert missing in op.ready(project)["message"]  # type: ignore[index]
    obj = await op.wait_condition("app", "False", "OVHCredentialsMissing")
    assert f"OVHProject later: {missing}" in op.ready(obj)["message"]  # type: ignore[index]

    op.put_secret("later-ovh", OPERATOR_NAMESPACE, {"OVH_APPLICATION_KEY": op.ovh.credentials.application_key})
    await op.settle()
    assert op.app is not None
    await op.app.projects.resync()  # as every OVH_S3_OPERATOR_PROJECT_RESYNC_INTERVAL
    project = await op.wait_project("later", "False", "OVHCredentialsMissing")
    assert "holds no complete OVH credentials: set OVH_APPLICATION_SECRET, OVH_CONSUMER_KEY" in \
        op.ready(project)["message"]  # type: ignore[index]

    op.add_ovh_project("later", secret="later-ovh")
    await op.app.projects.resync()
    await op.wait_project("later", "True", "CredentialsValid")
    await op.assert_consistent(["app"])


async def test_an_unavailable_ovh_leaves_the_project_usable_and_is_checked_again(op: Operator) -> None:
    outage = op.ovh.add_fault(path=r"/role$", status=503, times=-1)
    op.add_ovh_project("later")
    project = await op.wait_project("later", "False", "OVHUnavailable")
    assert "checking again soon" in op.ready(project)["message"]  # type: ignore[index]
    op.ovh.remove_fault(outage)
    op.create("app", {"projectRef": {"name": "later"}})  # not refused meanwhile: OVH may be back
    await op.assert_consistent(["app"])
    assert op.app is not None
    await op.app.projects.resync()
    await op.wait_project("later", "True", "CredentialsValid")


async def test_credentials_outside_the_operator_namespace_are_never_used(op: Operator) -> None:
    keys = op.ovh.credentials
    op.put_secret("mine", "default", {"OVH_APPLICATION_KEY": keys.application_key,
                                      "OVH_APPLICATION_SECRET": keys.application_secret,
                                      "OVH_CONSUMER_KEY": keys.consumer_key})
    op.set_ovh_project("tenant", op.ovh.service_name, "mine", op.ovh.url,
                       credentialsSecretRef={"name": "mine", "namespace": "default"})
    project = await op.wait_project("tenant", "False", "OVHProjectError")
    assert f"OVHProject Secrets must be in the operator's namespace {OPERATOR_NAMESPACE}" in \
        op.ready(project)["message"]  # type: ignore[index]
    op.create("app", {"projectRef": {"name": "tenant"}})
    await op.wait_condition("app", "False", "OVHProjectError")
    assert op.ovh.writes() == []


async def test_rotated_credentials_are_used_without_a_restart(two: tuple[Operator, OVHProject]) -> None:
    op, _ = two
    op.create("app", SECOND)
    await op.wait_ready("app")
    secret = op.secret_values("second-ovh", OPERATOR_NAMESPACE)
    assert secret is not None
    # The platform rotates the consumer key: the old one stops working at once, the Secret gets the new.
    rotated = op.ovh.revoke_consumer_key(secret["OVH_CONSUMER_KEY"])
    op.put_secret("second-ovh", OPERATOR_NAMESPACE, {**secret, "OVH_CONSUMER_KEY": rotated.consumer_key})
    op.patch_spec("app", {"description": "after the rotation"})
    # The first call with the old key is refused; the Secret is read again at once and the new key used.
    await op.wait_ready("app")
    assert op.ovh.calls()[-1].status == 200
    await op.wait_project("second", "True", "CredentialsValid")
    warnings = [e for e in await op.events() if e["type"] == "Warning"]
    assert len(warnings) <= 1  # at most the one reconcile that met the revoked key


async def test_an_oauth2_project_renews_tokens_ovh_ended(op: Operator) -> None:
    op.add_ovh_project("sa", oauth2=True)
    await op.wait_project("sa", "True", "CredentialsValid")
    project = op.ovh_project("sa")
    assert project is not None and project["status"]["authentication"] == "oauth2"
    assert "an OAuth2 service account" in op.ready(project)["message"]  # type: ignore[index]
    op.create("app", {"projectRef": {"name": "sa"}, "grants": [{"bucket": "b-1", "access": "read"}]})
    await op.wait_ready("app")
    granted = op.ovh.tokens_granted()
    assert granted == 1  # one token for every call so far

    op.ovh.expire_tokens()  # OVH ends the token before the expiry it announced
    op.patch_spec("app", {"grants": [{"bucket": "b-2", "access": "read"}]})
    await op.assert_consistent(["app"])
    assert op.ovh.tokens_granted() == granted + 1
    assert not [e for e in await op.events() if e["type"] == "Warning"]  # no failure on the way


async def test_deletion_waits_for_a_project_that_is_gone(two: tuple[Operator, OVHProject]) -> None:
    op, second = two
    op.create("app", SECOND)
    obj = await op.wait_ready("app")
    op.delete_ovh_project("second")
    op.delete("app")
    message = await until(lambda: deletion_message(op, "app"), what="the deletion to wait")
    assert message.startswith("Cannot delete the OVH user yet: OVHProject second does not exist")
    assert "remove the finalizer s3.ovh-operator.dev/ovh-user" in message
    assert second.user(obj["status"]["userId"]) is not None

    op.add_ovh_project("second", service_name=second.service_name)  # the resource is looked at again
    await op.wait_gone("app")
    assert users(second) == []


async def test_a_project_that_names_another_id_is_not_guessed_at(two: tuple[Operator, OVHProject]) -> None:
    op, second = two
    op.create("app", SECOND)
    obj = await op.wait_ready("app")
    op.delete_ovh_project("second")
    third = op.ovh.add_project()
    op.add_ovh_project("second", service_name=third.service_name)
    op.patch_spec("app", {"description": "x"})
    changed = await op.wait_condition("app", "False", "OVHProjectChanged")
    assert f"lives in OVH project {second.service_name}" in op.ready(changed)["message"]  # type: ignore[index]
    assert users(third) == [] and len(users(second)) == 1
    op.delete("app")
    message = await until(lambda: deletion_message(op, "app"), what="the deletion to wait")
    assert "lives in OVH project" in message and "remove the finalizer" in message
    assert second.user(obj["status"]["userId"]) is not None


async def test_project_ref_and_service_name_cannot_change(op: Operator) -> None:
    op.create("app", {})
    await op.wait_ready("app")
    with pytest.raises(ApiException) as refused:
        op.patch_spec("app", {"projectRef": {"name": "other"}})
    assert refused.value.status == 422 and "spec.projectRef cannot be added, changed or removed" in \
        str(refused.value.body)
    op.add_ovh_project("second")
    with pytest.raises(ApiException) as refused:
        op.set_ovh_project("second", "0123456789abcdef0123456789abcdef", "second-ovh", op.ovh.url)
    assert refused.value.status == 422 and "serviceName cannot change" in str(refused.value.body)


async def test_rejected_credentials_are_reported_by_the_project_and_its_resources(op: Operator) -> None:
    values = op.add_ovh_project("bad")
    op.put_secret("bad-ovh", OPERATOR_NAMESPACE, {**values, "OVH_CONSUMER_KEY": "x" * 32})
    op.create("app", {"projectRef": {"name": "bad"}})
    assert op.app is not None
    await op.app.projects.resync()
    project = await op.wait_project("bad", "False", "OVHCredentialsRejected")
    assert f"check OVH_CONSUMER_KEY in Secret {OPERATOR_NAMESPACE}/bad-ovh" in \
        op.ready(project)["message"]  # type: ignore[index]
    obj = await op.wait_condition("app", "False", "OVHCredentialsRejected")
    message = op.ready(obj)["message"]  # type: ignore[index]
    assert "OVHProject bad" in message and f"OVH_CONSUMER_KEY in Secret {OPERATOR_NAMESPACE}/bad-ovh" in message
    assert op.ovh.writes() == []


async def test_project_clients_are_closed_when_unused() -> None:
    async with Operator(project_idle_timeout=0.0) as op:
        op.add_ovh_project("second")
        await op.wait_project("second", "True")
        op.create("app", {"projectRef": {"name": "second"}})
        await op.wait_ready("app")
        assert op.app is not None
        projects = op.app.projects
        await projects.resync()
        assert projects.in_use() == ["", "second"]  # a resource uses it
        op.delete("app")
        await op.wait_gone("app")
        await projects.resync()
        assert projects.in_use() == [""]
        op.create("again", {"projectRef": {"name": "second"}})
        await op.wait_ready("again")  # opened again on demand
        assert projects.in_use() == ["", "second"]
