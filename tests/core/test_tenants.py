"""Tenant safety in-process: access policies enforced before any OVH call, tightening that takes
effect, revocation, the orphan sweep, and bounded specs."""

from __future__ import annotations

import json
from typing import Any

import pytest
from multidict import CIMultiDict

from ovh_s3_operator import orphans
from ovh_s3_operator_sandbox.harness import until
from ovh_s3_operator_sandbox.kube.server import KubeRequest

from ..support import worst_case_spec
from .conftest import Operator

TEAM_A = {"namespaceSelector": {"matchLabels": {"team": "a"}},
          "buckets": [{"name": "team-a-*", "maxAccess": "readwrite"},
                      {"name": "shared-datasets", "maxAccess": "read", "prefixes": ["public/*"]}],
          "roles": ["objectstore_operator"], "regions": ["*"]}


@pytest.fixture
async def tenants() -> Any:
    async with Operator(access={"team-a": TEAM_A}, namespace="team-a", ovh_consistency_delay=0.05,
                        ovh_request_timeout=0.1, orphan_grace=0.0) as op:
        op.label_namespace("team-a", team="a")
        op.label_namespace("team-b", team="b")
        yield op


async def test_a_namespace_gets_what_its_policy_allows(tenants: Operator) -> None:
    tenants.create("app", {"grants": [{"bucket": "team-a-backups", "access": "readwrite"},
                                      {"bucket": "shared-datasets", "prefix": "public/", "access": "read"}]})
    await tenants.assert_consistent(["app"])


@pytest.mark.parametrize(("spec", "named"), [
    ({"grants": [{"bucket": "team-a-backups", "access": "admin"}]}, "spec.grants[0] (admin on team-a-backups)"),
    ({"grants": [{"bucket": "shared-datasets", "access": "read"}]}, "spec.grants[0] (read on shared-datasets)"),
    ({"roles": ["administrator"]}, "role administrator"),
    ({"policy": {"Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["*"]}]}},
     "no raw S3 policy is allowed"),
])
async def test_what_is_not_allowed_is_refused_before_any_ovh_call(tenants: Operator, spec: dict[str, Any],
                                                                  named: str) -> None:
    tenants.create("greedy", spec)
    obj = await tenants.wait_condition("greedy", "False", "AccessDenied")
    message = tenants.ready(obj)["message"]  # type: ignore[index]
    assert named in message
    assert "Access policies selecting namespace team-a: team-a (kubectl get osap)" in message
    assert tenants.ovh.writes() == []
    assert "finalizers" not in obj["metadata"]


async def test_a_namespace_no_policy_selects_gets_nothing_by_default(tenants: Operator) -> None:
    tenants.create("app", {"grants": [{"bucket": "team-a-backups", "access": "read"}]}, "team-b")
    obj = await tenants.wait_condition("app", "False", "AccessDenied", namespace="team-b")
    assert "No OVHObjectStorageAccessPolicy selects namespace team-b and the operator's default access is deny" in \
        tenants.ready(obj)["message"]  # type: ignore[index]
    assert tenants.ovh.writes() == []


async def test_default_allow_gives_any_bucket_but_only_the_objectstore_role() -> None:
    async with Operator(access={}, default_access="allow") as op:
        op.create("fine", {"grants": [{"bucket": "any-bucket", "access": "admin"}]})
        await op.assert_consistent(["fine"])
        op.create("admin", {"roles": ["objectstore_operator", "administrator"]})
        obj = await op.wait_condition("admin", "False", "AccessDenied")
        assert "role administrator" in op.ready(obj)["message"]  # type: ignore[index]


async def test_tightening_shrinks_the_ovh_policy_and_loosening_restores_it(tenants: Operator) -> None:
    uid = tenants.create("app", {"grants": [{"bucket": "team-a-data", "access": "readwrite"},
                                            {"bucket": "team-a-logs", "access": "read"}]})["metadata"]["uid"]
    first = await tenants.wait_ready("app")
    narrow = {**TEAM_A, "buckets": [{"name": "team-a-logs", "maxAccess": "read"}]}
    tenants.set_access_policy("team-a", narrow)
    obj = await tenants.wait_condition("app", "False", "AccessDenied")
    assert "spec.grants[0] (readwrite on team-a-data)" in tenants.ready(obj)["message"]  # type: ignore[index]
    [user] = tenants.ovh_users(uid)
    assert [s["Resource"][0] for s in json.loads(user["policy"])["Statement"]] == ["arn:aws:s3:::team-a-logs"]
    assert obj["status"]["accessKeyId"] == first["status"]["accessKeyId"]  # the key stays, with less access

    tenants.set_access_policy("team-a", TEAM_A)
    await tenants.wait_ready("app")
    [user] = tenants.ovh_users(uid)
    assert "team-a-data" in user["policy"]


async def test_relabelling_a_namespace_revokes_its_keys(tenants: Operator) -> None:
    uid = tenants.create("app", {"grants": [{"bucket": "team-a-data", "access": "read"}]})["metadata"]["uid"]
    await tenants.wait_ready("app")
    tenants.label_namespace("team-a", team="none")
    obj = await tenants.wait_condition("app", "False", "AccessDenied")
    assert "None of spec.roles is allowed" in tenants.ready(obj)["message"]  # type: ignore[index]
    [user] = tenants.ovh_users(uid)
    assert user["credentials"] == [] and json.loads(user["policy"]) == {"Statement": []}
    assert tenants.secret("app-s3") is None
    await tenants.wait_events("KeyRevoked", "SecretDeleted", namespace="team-a")

    tenants.label_namespace("team-a", team="a")
    await tenants.assert_consistent(["app"])  # the same user, a new key
    assert tenants.ovh_users(uid)[0]["id"] == user["id"]


async def orphan(op: Operator, name: str) -> None:
    """Delete a resource with its finalizer removed by hand while the operator was down."""
    await op.stop()
    op.delete(name)
    op.patch(name, {"metadata": {"finalizers": None}})
    await op.wait_gone(name)
    await op.start()


async def test_an_orphan_is_swept_and_nothing_else(tenants: Operator) -> None:
    uid = tenants.create("app", {})["metadata"]["uid"]
    obj = await tenants.wait_ready("app")
    kept = tenants.create("kept", {})
    await tenants.wait_ready("kept")
    stranger = tenants.ovh.project.add_user("made by hand")
    other_cluster = tenants.ovh.project.add_user(f"[osu:another-cluster/{uid}] team-a/app")
    await orphan(tenants, "app")
    user_id = obj["status"]["userId"]
    assert tenants.ovh.project.user(user_id) is not None  # nothing deleted it yet

    assert tenants.app is not None
    assert await orphans.sweep(tenants.app.controller.ctx) == {"": [user_id]}
    await until(lambda: tenants.ovh.project.user(user_id) is None, what="the orphan to be deleted")
    assert tenants.ovh.project.user(stranger) is not None
    assert tenants.ovh.project.user(other_cluster) is not None
    assert tenants.ovh_users(kept["metadata"]["uid"])
    await tenants.wait_events("OrphanDeleted", namespace="team-a")


async def test_a_resource_recreated_with_the_same_name_does_not_save_the_orphan(tenants: Operator) -> None:
    tenants.create("app", {})
    first = await tenants.wait_ready("app")
    await orphan(tenants, "app")
    tenants.create("app", {})
    second = await tenants.wait_ready("app")
    assert tenants.app is not None
    assert await orphans.sweep(tenants.app.controller.ctx) == {"": [first["status"]["userId"]]}
    await tenants.assert_consistent(["app"])
    assert second["status"]["userId"] != first["status"]["userId"]


async def test_the_largest_spec_the_schema_allows_is_handled_and_deleted() -> None:
    spec = worst_case_spec("team-a-")
    applied = json.dumps({"apiVersion": "s3.ovh-operator.dev/v1alpha1", "kind": "OVHObjectStorageUser",
                          "metadata": {"name": "huge", "namespace": "team-a"}, "spec": spec})
    async with Operator(access={"team-a": {**TEAM_A, "allowRawPolicy": True}}, namespace="team-a") as op:
        op.label_namespace("team-a", team="a")
        uid = op.create("huge", spec, annotations={"kubectl.kubernetes.io/last-applied-configuration": applied})[
            "metadata"]["uid"]
        await op.assert_consistent(["huge"])  # every part of it reaches OVH and the Secret, nothing wedges
        assert len(op.ovh_users(uid)[0]["policy"]) > 100_000
        op.delete("huge")
        await op.wait_gone("huge")
        assert op.ovh_users(uid) == []


async def test_deep_nesting_cannot_reach_the_operator(tenants: Operator) -> None:
    nested = "{}"
    for _ in range(500):
        nested = f'{{"x": {nested}}}'
    statement = f'{{"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["*"], "Condition": {nested}}}'
    body = ('{"apiVersion": "s3.ovh-operator.dev/v1alpha1", "kind": "OVHObjectStorageUser", '
            f'"metadata": {{"name": "deep"}}, "spec": {{"policy": {{"Statement": [{statement}]}}}}}}')
    path = "/apis/s3.ovh-operator.dev/v1alpha1/namespaces/team-a/ovhobjectstorageusers"
    answer = tenants.kube.handle(KubeRequest("POST", path, {}, CIMultiDict({"Content-Type": "application/json",
                                                             "Authorization": f"Bearer {tenants.kube.admin_token}"}),
                                             body.encode()))
    assert answer.status == 422
    assert tenants.get("deep") is None
