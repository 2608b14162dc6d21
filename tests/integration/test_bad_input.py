"""Bad input: a Ready=False condition that names the problem, nothing created in OVH, nothing leaked."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from ovh_s3_operator.sandbox.ovh import DEFAULT_ROLES
from ovh_s3_operator.sandbox.stack import wait_for

from .conftest import World

pytestmark = pytest.mark.integration


def assert_no_secrets_in(world: World, text: str) -> None:
    credentials = world.stack.ovh.credentials
    for value in (credentials.application_secret, credentials.consumer_key):
        assert value not in text


def fail_then_delete(world: World, name: str, spec: dict[str, Any], reason: str, message: str) -> dict[str, Any]:
    """Create, wait for Ready=False with reason/message, check OVH is untouched, delete, check cleanup."""
    world.create(name, spec)
    obj = world.wait_condition(name, "False", reason)
    condition = world.ready(obj)
    assert condition is not None
    assert message in condition["message"], condition["message"]
    assert_no_secrets_in(world, str(obj))
    assert world.ovh_users() == []
    world.delete(name)
    world.wait_gone(name)
    assert world.ovh_users() == []
    return condition


@pytest.mark.parametrize(("policy", "message"), [
    ({"Statement": [{"Effect": "Allow", "Action": ["s3:Foo"], "Resource": ["arn:aws:s3:::b1x"]}]},
     "spec.policy.Statement[0].Action: unsupported S3 action 's3:Foo'"),
    ({"Statement": [{"Effect": "Allow", "Action": 42, "Resource": "arn:aws:s3:::b1x"}]},
     "spec.policy.Statement[0].Action must be a non-empty string or list of strings"),
    ({"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "bucket/*"}]},
     "must look like arn:aws:s3:::bucket"),
], ids=["unknown-action", "malformed", "bad-resource"])
def test_invalid_policy(world: World, policy: dict[str, Any], message: str) -> None:
    world.start_operator()
    fail_then_delete(world, "bad-policy", {"policy": policy}, "InvalidSpec", message)


@pytest.mark.parametrize("world", [{"ovh_roles": [r for r in DEFAULT_ROLES if r != "ai_training_read"]}],
                         indirect=True)
def test_role_the_project_does_not_offer(world: World) -> None:
    world.start_operator()
    fail_then_delete(world, "bad-role", {"roles": ["ai_training_read"]}, "InvalidSpec",
                     "spec.roles: the OVH project does not offer ai_training_read")


@pytest.mark.parametrize(("spec", "field"), [
    ({"roles": ["superuser"]}, "spec.roles[0]"),
    ({"policy": {"Statement": {"Effect": "Allow"}}}, "spec.policy.Statement"),
    ({"grants": [{"bucket": "Not_A_Bucket", "access": "read"}]}, "spec.grants[0].bucket"),
    ({"grants": [{"bucket": "fine-bucket", "access": "write"}]}, "spec.grants[0].access"),
], ids=["role", "statement-not-a-list", "bucket-name", "access-level"])
def test_the_crd_schema_refuses_what_it_can(world: World, spec: dict[str, Any], field: str) -> None:
    with pytest.raises(ApiException) as error:
        world.create("refused", spec)
    assert error.value.status == 422
    assert field in str(error.value.body)


def test_secret_name_owned_by_something_else(world: World) -> None:
    world.start_operator()
    world.core.create_namespaced_secret(world.namespace, {
        "metadata": {"name": "taken"}, "stringData": {"password": "keep-me"}})
    before = world.secret("taken")
    assert before is not None
    fail_then_delete(world, "wants-taken", {"secret": {"name": "taken"}}, "SecretConflict",
                     "Secret taken already exists in namespace team-a and is not owned by this resource")
    after = world.secret("taken")
    assert after is not None
    assert after["data"] == before["data"]
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_missing_ovh_credentials(world: World) -> None:
    world.start_operator(drop=("OVH_APPLICATION_SECRET", "OVH_CONSUMER_KEY"))
    condition = fail_then_delete(world, "no-creds", {}, "OVHCredentialsMissing",
                                 "set OVH_APPLICATION_SECRET, OVH_CONSUMER_KEY")
    assert "operator" in condition["message"]
    assert "The operator has no OVH credentials" in world.operator_log()
    assert world.stack.ovh.calls() == []


def test_fixing_an_invalid_spec_recovers(world: World) -> None:
    world.start_operator()
    world.create("fix-me", {"grants": [{"bucket": "good-bucket", "access": "read"}], "region": "venus"})
    world.wait_condition("fix-me", "False", "InvalidSpec")
    assert world.ovh_users() == []
    world.patch_spec("fix-me", {"region": "gra"})
    obj = world.wait_ready("fix-me", generation=2)
    assert world.secret_values("fix-me-s3")["AWS_ENDPOINT_URL"] == "https://s3.gra.io.cloud.ovh.net"  # type: ignore[index]
    assert len(world.ovh_users(obj["metadata"]["uid"])) == 1


def test_unknown_region(world: World) -> None:
    world.start_operator()
    fail_then_delete(world, "far-away", {"region": "mars"}, "InvalidSpec",
                     "spec.region: unknown region 'mars'; use one of gra, sbg")


@pytest.mark.parametrize("world", [{"kube_validate": False}], indirect=True)
def test_operator_checks_what_a_schemaless_api_server_lets_through(world: World) -> None:
    world.start_operator()
    fail_then_delete(world, "no-schema", {"grants": [{"bucket": "Bad_Bucket", "access": "read"}]}, "InvalidSpec",
                     "spec.grants[0].bucket: Value error, invalid bucket name 'Bad_Bucket'")


def test_two_resources_naming_the_same_secret(world: World) -> None:
    world.start_operator()
    first = world.create("first", {"secret": {"name": "shared"}})
    world.wait_ready("first")
    before = world.secret("shared")
    world.create("second", {"secret": {"name": "shared"}})
    obj = world.wait_condition("second", "False", "SecretConflict")
    assert "Secret shared already exists" in world.ready(obj)["message"]  # type: ignore[index]
    after = world.secret("shared")
    assert after is not None and before is not None
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert [r["uid"] for r in after["metadata"]["ownerReferences"]] == [first["metadata"]["uid"]]
    assert len(world.ovh_users()) == 1  # the second resource created nothing in OVH

    # Once the first resource and its Secret are gone, the second one takes the name over.
    world.delete("first")
    world.assert_consistent(["second"], gone=["first"])


def test_rejected_ovh_credentials(world: World) -> None:
    world.start_operator({"OVH_APPLICATION_SECRET": "not-the-secret"})
    fail_then_delete(world, "rejected", {}, "OVHCredentialsRejected", "check OVH_APPLICATION_SECRET")
    assert "not-the-secret" not in world.operator_log()


def test_deleted_while_still_creating(world: World) -> None:
    world.stack.ovh.activation = 3.0
    world.start_operator()
    uid = world.create("hasty", {})["metadata"]["uid"]
    wait_for(lambda: world.ovh_users(uid), 20, what="the OVH user to exist")
    assert world.ovh_users(uid)[0]["status"] == "creating"
    world.delete("hasty")
    world.wait_gone("hasty")
    assert world.ovh_users() == []
    assert world.secret("hasty-s3") is None


def test_spec_changed_while_creating(world: World) -> None:
    world.stack.ovh.activation = 2.0
    world.start_operator()
    uid = world.create("changing", {"grants": [{"bucket": "old-bucket", "access": "read"}]})["metadata"]["uid"]
    wait_for(lambda: world.ovh_users(uid), 20, what="the OVH user to exist")
    world.patch_spec("changing", {"grants": [{"bucket": "new-bucket", "access": "readwrite"}]})
    world.wait_ready("changing", generation=2)
    world.assert_consistent(["changing"])
    [user] = world.ovh_users(uid)
    assert "new-bucket" in user["policy"]
    assert "old-bucket" not in user["policy"]


def test_description_may_not_carry_a_marker(world: World) -> None:
    world.start_operator()
    fail_then_delete(world, "copycat", {"description": "copied [osu:1234]"}, "InvalidSpec",
                     "spec.description: Value error, must not contain '[osu:'")


def test_users_that_only_mention_a_marker_are_not_adopted_or_deleted(world: World) -> None:
    world.start_operator()
    uid = world.create("owner", {})["metadata"]["uid"]
    world.wait_ready("owner")
    # Someone creates a user by hand whose description quotes the marker (not at its end).
    stranger = world.ovh.post(f"{world.project}/user", description=f"see [osu:{uid}] for details",
                              roles=["objectstore_operator"])
    world.delete("owner")
    world.wait_gone("owner")
    assert world.stack.ovh.user(stranger["id"]) is not None
