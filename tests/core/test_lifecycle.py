"""The core lifecycle in-process: create → user, policy, key, Secret; edits; deletion."""

from __future__ import annotations

import json

from ovh_s3_operator.model import FINALIZER
from ovh_s3_operator_sandbox.harness import until

from .conftest import Operator

SPEC = {
    "description": "Backups for team A",
    "region": "sbg",
    "grants": [{"bucket": "team-a-backups", "prefix": "nightly/", "access": "readwrite"},
               {"bucket": "team-a-config", "access": "read"}],
}


def statements(policy_text: str) -> dict[str, dict[str, object]]:
    return {s["Sid"]: s for s in json.loads(policy_text)["Statement"]}


async def test_create_makes_user_policy_key_and_secret(op: Operator) -> None:
    uid = op.create("backup-writer", SPEC)["metadata"]["uid"]
    obj = await op.wait_ready("backup-writer")

    [user] = op.ovh_users(uid)
    assert user["roles"] == ["objectstore_operator"]
    cluster = op.kube.get_object("v1", "namespaces", None, "kube-system")["metadata"]["uid"]  # type: ignore[index]
    assert user["description"] == f"[osu:{cluster}/{uid}] default/backup-writer Backups for team A"
    policy = statements(user["policy"])
    assert policy["Grant0Objects"]["Resource"] == ["arn:aws:s3:::team-a-backups/nightly/*"]
    assert policy["Grant0List"]["Condition"] == {"StringLike": {"s3:prefix": ["nightly/*"]}}
    assert "s3:PutObject" not in policy["Grant1"]["Action"]
    [credential] = user["credentials"]
    assert op.secret_values("backup-writer-s3") == {
        "AWS_ACCESS_KEY_ID": credential["access"], "AWS_SECRET_ACCESS_KEY": credential["secret"],
        "AWS_ENDPOINT_URL": "https://s3.sbg.io.cloud.ovh.net", "AWS_REGION": "sbg"}
    secret = op.secret("backup-writer-s3")
    assert secret is not None and secret["type"] == "Opaque"
    [owner] = secret["metadata"]["ownerReferences"]
    assert (owner["uid"], owner["controller"]) == (uid, True)
    status = obj["status"]
    assert (status["userId"], status["username"]) == (user["id"], user["username"])
    assert (status["accessKeyId"], status["secretName"]) == (credential["access"], "backup-writer-s3")
    assert "userRequestedAt" not in status
    assert obj["metadata"]["finalizers"] == [FINALIZER]
    await op.wait_events("UserCreated", "PolicyApplied", "KeyCreated", "SecretWritten", "Ready")
    for event in await op.events():  # posted on events.k8s.io/v1, as ovh-s3-operator
        assert (event["reportingComponent"], event["source"]["component"]) == ("ovh-s3-operator", "ovh-s3-operator")
        assert event["involvedObject"]["uid"] == uid


async def test_a_new_resource_costs_four_ovh_calls_once_activation_is_learned(op: Operator) -> None:
    """The create path reads nothing it knows: no listing, no policy or key reads for a new user."""
    op.create("first", {})
    await op.wait_ready("first")
    op.ovh.clear_calls()
    op.create("second", {})
    await op.wait_ready("second")
    methods = [(c.method, c.path.rsplit("/", 1)[-1] if c.path.count("/") > 4 else "user") for c in op.ovh.calls()]
    assert ("GET", "user") not in methods  # no listing of all users
    assert not [c for c in op.ovh.calls() if c.path.endswith(("/policy", "/s3Credentials")) and c.method == "GET"]
    writes = [c.method for c in op.ovh.writes()]
    assert writes == ["POST", "POST", "POST"]  # user, policy, key
    polls = op.calls("GET", r"/user/\d+$")
    assert 1 <= len(polls) <= 3


async def test_grants_change_reapplies_the_policy_with_the_same_user_and_key(op: Operator) -> None:
    uid = op.create("app", {"grants": [{"bucket": "app-data", "access": "read"}]})["metadata"]["uid"]
    first = await op.wait_ready("app")
    op.patch("app", {"spec": {"grants": [{"bucket": "app-data", "access": "readwrite"}]}})
    second = await op.wait_ready("app")
    assert second["metadata"]["generation"] == 2
    assert (second["status"]["userId"], second["status"]["accessKeyId"]) == (
        first["status"]["userId"], first["status"]["accessKeyId"])
    [user] = op.ovh_users(uid)
    assert "s3:PutObject" in statements(user["policy"])["Grant0"]["Action"]  # type: ignore[operator]
    assert len(op.calls("POST", r"/user$")) == 1


async def test_region_change_rewrites_the_secret_only(op: Operator) -> None:
    op.create("app", {"region": "gra"})
    first = await op.wait_ready("app")
    op.patch("app", {"spec": {"region": "waw"}})
    await op.wait_ready("app")
    values = op.secret_values("app-s3")
    assert values is not None
    assert (values["AWS_REGION"], values["AWS_ENDPOINT_URL"]) == ("waw", "https://s3.waw.io.cloud.ovh.net")
    assert values["AWS_ACCESS_KEY_ID"] == first["status"]["accessKeyId"]
    assert len(op.calls("POST", r"/s3Credentials$")) == 1


async def test_renaming_the_secret_moves_the_credentials(op: Operator) -> None:
    op.create("app", {})
    await op.wait_ready("app")
    op.patch("app", {"spec": {"secret": {"name": "renamed"}}})
    obj = await op.wait_ready("app")
    assert obj["status"]["secretName"] == "renamed"
    assert op.secret("app-s3") is None
    assert op.secret_values("renamed") is not None
    await op.wait_events("SecretMoved")


async def test_roles_change_in_place(op: Operator) -> None:
    uid = op.create("app", {})["metadata"]["uid"]
    first = await op.wait_ready("app")
    op.patch("app", {"spec": {"roles": ["objectstore_operator", "backup_operator"]}})
    second = await op.wait_ready("app")
    [user] = op.ovh_users(uid)
    assert sorted(user["roles"]) == ["backup_operator", "objectstore_operator"]
    assert (second["status"]["userId"], second["status"]["accessKeyId"]) == (
        first["status"]["userId"], first["status"]["accessKeyId"])
    assert len(op.calls("PUT", r"/user/\d+/role$")) == 1
    await op.wait_events("RolesChanged")


async def test_raw_policy_is_merged_with_grants(op: Operator) -> None:
    deny = {"Sid": "KeepAudit", "Effect": "Deny", "Action": ["s3:DeleteObject"],
            "Resource": ["arn:aws:s3:::logs/audit/*"]}
    raw = {"Version": "2012-10-17", "Statement": [deny]}
    uid = op.create("app", {"grants": [{"bucket": "logs", "access": "readwrite"}], "policy": raw})["metadata"]["uid"]
    await op.wait_ready("app")
    [user] = op.ovh_users(uid)
    document = json.loads(user["policy"])
    assert document["Version"] == "2012-10-17"
    assert [s["Sid"] for s in document["Statement"]] == ["Grant0", "KeepAudit"]


async def test_delete_removes_the_user_then_the_finalizer(op: Operator) -> None:
    op.ovh.project.deletion = 0.3
    uid = op.create("app", {})["metadata"]["uid"]
    await op.wait_ready("app")
    op.delete("app")
    deleting = await op.wait_condition("app", "False", "Deleting")
    assert "Waiting for OVH to delete user" in op.ready(deleting)["message"]  # type: ignore[index]
    await op.wait_gone("app")
    assert op.ovh_users(uid) == []
    assert op.ovh.project.users() == []
    await until(lambda: op.secret("app-s3") is None, what="the Secret collected with its owner")
    await op.wait_events("UserDeleting", "UserDeleted")


async def test_an_invalid_resource_gets_no_finalizer_and_goes_at_once(op: Operator) -> None:
    op.create("broken", {"region": "mars"})
    obj = await op.wait_condition("broken", "False", "InvalidSpec")
    assert "finalizers" not in obj["metadata"]  # nothing is created in OVH without the finalizer first
    op.delete("broken")
    assert op.get("broken") is None
    assert op.ovh.writes() == []


async def test_delete_while_ovh_never_showed_the_user(op: Operator) -> None:
    """A creation request that may have been sent is waited for, then nothing is left to delete."""
    op.ovh.project.visibility_delay = 0.2
    op.ovh.add_fault(method="POST", path=r"/user$", reset=True)  # the request never reached OVH... or did it
    op.create("app", {})
    await until(lambda: (op.get("app") or {}).get("status", {}).get("userRequestedAt"), what="userRequestedAt")
    op.delete("app")
    await op.wait_gone("app")
    assert op.ovh_users() == []


async def test_many_resources_in_many_namespaces(op: Operator) -> None:
    names = [f"r{i}" for i in range(12)]
    for i, name in enumerate(names):
        namespace = f"team-{i % 3}"
        op.kube.create_namespace(namespace)
        op.create(name, {"grants": [{"bucket": f"bucket-{name}", "access": "read"}]}, namespace)
    await op.assert_consistent([(f"team-{i % 3}", name) for i, name in enumerate(names)])


async def test_a_restart_with_ready_resources_writes_nothing(op: Operator) -> None:
    names = ["r1", "r2", "r3"]
    shaped = {"secret": {"keys": {"region": "S3_REGION"}, "template": {"who": "{{ userId }} {{ username }}"},
                         "labels": {"team": "a"}, "annotations": {"note": "n"}}}
    for name in names:
        op.create(name, shaped if name == "r3" else {})
    await op.assert_consistent(names)
    versions = {name: op.get(name)["metadata"]["resourceVersion"] for name in names}  # type: ignore[index]
    await op.events()  # every event of the first run is posted
    op.ovh.clear_calls()
    mark = len(op.kube.requests)
    await op.restart(drift_interval=3600)
    await until(lambda: all(any(r.method == "GET" and r.path.endswith(f"/ovhobjectstorageusers/{name}")
                                for r in list(op.kube.requests)[mark:]) for name in names),
                what="the restarted operator to look at every resource")
    await op.settle()
    # No OVH call about any resource, not even a read: only the start's warm-up (OVH's clock, the roles).
    assert sorted(c.path.rsplit("/", 1)[-1] for c in op.ovh.calls()) == ["role", "time"]
    assert [r for r in list(op.kube.requests)[mark:] if r.method != "GET"] == []
    assert {name: op.get(name)["metadata"]["resourceVersion"] for name in names} == versions  # type: ignore[index]
