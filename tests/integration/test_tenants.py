"""Tenant safety over HTTP, with a real operator process: each attack a hostile tenant tried, refused.

Namespaces team-a and team-b each have an access policy for their own buckets; team-b may also
write raw policies. The checks: nothing is created in OVH for a refused resource, no foreign key
lands in any Secret, the other tenant's user and policy stay as they were.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from ovh_s3_operator_sandbox.policies import ALLOW_EVERYTHING
from ovh_s3_operator_sandbox.stack import wait_for

from ..support import worst_case_spec
from .conftest import FAILED, World, running_world

pytestmark = pytest.mark.integration


def own_buckets(team: str, raw: bool = False) -> dict[str, Any]:
    return {"namespaceSelector": {"matchLabels": {"team": team}},
            "buckets": [{"name": f"team-{team}-*", "maxAccess": "readwrite"}],
            "roles": ["objectstore_operator"], "regions": ["*"], "allowRawPolicy": raw}


ACCESS = {"team-a": own_buckets("a"), "team-b": own_buckets("b", raw=True)}
FAST = {"OVH_S3_OPERATOR_OVH_CONSISTENCY_DELAY": "0.1", "OVH_S3_OPERATOR_OVH_REQUEST_TIMEOUT": "1"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[World]:
    """One sandbox and one operator for the whole module (the attacks do not disturb each other)."""
    tmp_path: Path = tmp_path_factory.mktemp("tenants")
    failed = lambda: any(item.stash.get(FAILED, False) for item in request.session.items)  # noqa: E731
    with running_world(tmp_path, {"access": ACCESS}, failed) as world:
        world.core.patch_namespace("team-a", {"metadata": {"labels": {"team": "a"}}})
        world.core.create_namespace({"metadata": {"name": "team-b", "labels": {"team": "b"}}})
        world.start_operator(FAST)
        world.create("victim", {"grants": [{"bucket": "team-a-backups", "access": "readwrite"}]})
        world.wait_ready("victim")
        yield world


def victim(world: World) -> tuple[dict[str, Any], dict[str, Any]]:
    obj = world.wait_ready("victim")
    [user] = world.ovh_users(obj["metadata"]["uid"])
    return obj, user


def refused(world: World, name: str, spec: dict[str, Any], *named: str) -> None:
    writes = len(world.stack.ovh.writes())
    world.create(name, spec, "team-b")
    obj = world.wait_condition(name, "False", "AccessDenied", namespace="team-b")
    message = world.ready(obj)["message"]  # type: ignore[index]
    for item in named:
        assert item in message, message
    assert "team-b" in message
    assert len(world.stack.ovh.writes()) == writes  # nothing created in OVH
    world.delete(name, "team-b")
    world.wait_gone(name, "team-b")


def test_another_teams_bucket_is_refused(cluster: World) -> None:
    refused(cluster, "any-bucket", {"grants": [{"bucket": "team-a-backups", "access": "admin"}]},
            "spec.grants[0] (admin on team-a-backups)")


def test_a_raw_policy_on_every_bucket_is_refused(cluster: World) -> None:
    statement = {"Effect": "Allow", "Action": ["s3:*", "s3:CreateBucket", "s3:DeleteBucket"],
                 "Resource": ["arn:aws:s3:::*"]}
    refused(cluster, "any-raw", {"policy": {"Statement": [statement]}}, "admin on arn:aws:s3:::*")


def test_an_administrator_role_is_refused(cluster: World) -> None:
    refused(cluster, "any-role", {"roles": ["administrator"]}, "role administrator")


def test_pointing_status_at_another_tenants_user_gets_nothing(cluster: World) -> None:
    victim_obj, before = victim(cluster)
    cluster.create("thief", {"grants": [{"bucket": "team-b-data", "access": "read"}]}, "team-b")
    thief = cluster.wait_ready("thief", namespace="team-b")
    cluster.custom.patch_namespaced_custom_object_status(
        "s3.ovh-operator.dev", "v1alpha1", "team-b", "ovhobjectstorageusers", "thief",
        {"status": {"userId": victim_obj["status"]["userId"]}})
    cluster.patch_spec("thief", {"description": "wake up"}, "team-b")
    after_obj = cluster.wait_ready("thief", namespace="team-b")
    assert after_obj["status"]["userId"] not in (victim_obj["status"]["userId"], None)
    values = cluster.secret_values("thief-s3", "team-b")
    assert values is not None
    assert values["AWS_ACCESS_KEY_ID"] not in [c["access"] for c in before["credentials"]]
    assert victim(cluster)[1] == before

    # Pointed at the victim again, then deleted: the finalizer deletes only its own user.
    cluster.custom.patch_namespaced_custom_object_status(
        "s3.ovh-operator.dev", "v1alpha1", "team-b", "ovhobjectstorageusers", "thief",
        {"status": {"userId": victim_obj["status"]["userId"]}})
    cluster.delete("thief", "team-b")
    cluster.wait_gone("thief", "team-b")
    assert cluster.ovh_users(thief["metadata"]["uid"]) == []
    assert victim(cluster)[1] == before


def test_a_hand_made_administrator_is_never_touched(cluster: World) -> None:
    admin = cluster.stack.ovh.project.add_user("platform admin", ["administrator"])
    cluster.create("grabber", {"grants": [{"bucket": "team-b-data", "access": "read"}]}, "team-b")
    cluster.wait_ready("grabber", namespace="team-b")
    cluster.custom.patch_namespaced_custom_object_status(
        "s3.ovh-operator.dev", "v1alpha1", "team-b", "ovhobjectstorageusers", "grabber", {"status": {"userId": admin}})
    cluster.delete("grabber", "team-b")
    cluster.wait_gone("grabber", "team-b")
    assert cluster.stack.ovh.project.user(admin)["credentials"] == []  # type: ignore[index]
    assert not [c for c in cluster.stack.ovh.calls() if f"/user/{admin}" in c.path and c.method != "GET"]


@pytest.mark.parametrize(("template", "message"), [
    ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "calls are not available"),
    ("{{ name.__class__ }}", "uses an attribute templates may not use"),
    ("{% for b in (buckets * 1000)|list %}{{ secretAccessKey * 1000 }}{% endfor %}", "renders to more than"),
    ("{% for a in buckets %}{% for b in buckets %}{% endfor %}{% endfor %}", "loops cannot be nested"),
], ids=["escape", "dunder", "output", "nested-loops"])
def test_a_hostile_template_is_refused_before_anything_is_created(cluster: World, template: str,
                                                                  message: str) -> None:
    writes = len(cluster.stack.ovh.writes())
    spec = {"grants": [{"bucket": "team-b-data", "access": "read"}], "secret": {"template": {"x": template}}}
    cluster.create("hostile", spec, "team-b")
    obj = cluster.wait_condition("hostile", "False", "InvalidSpec", namespace="team-b")
    text = cluster.ready(obj)["message"]  # type: ignore[index]
    assert text.startswith("spec.secret.template.x: ") and message in text
    assert len(cluster.stack.ovh.writes()) == writes
    assert cluster.secret("hostile-s3", "team-b") is None
    cluster.delete("hostile", "team-b")
    cluster.wait_gone("hostile", "team-b")
    victim(cluster)  # the operator goes on serving everyone


def test_a_deeply_nested_policy_never_reaches_the_operator(cluster: World) -> None:
    nested = "{}"
    for _ in range(500):
        nested = f'{{"x": {nested}}}'
    body = ('{"apiVersion": "s3.ovh-operator.dev/v1alpha1", "kind": "OVHObjectStorageUser", "metadata": '
            '{"name": "deep"}, "spec": {"policy": {"Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"], '
            f'"Resource": ["*"], "Condition": {nested}}}]}}}}}}')
    url = f"{cluster.stack.kube.url}/apis/s3.ovh-operator.dev/v1alpha1/namespaces/team-b/ovhobjectstorageusers"
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {cluster.stack.kube.admin_token}"}
    answer = requests.post(url, data=body, headers=headers, timeout=10, verify=cluster.stack.kube.ca_file)
    assert answer.status_code == 422
    assert cluster.get("deep", "team-b") is None


def test_the_worst_case_spec_is_handled_and_deleted(cluster: World) -> None:
    spec = worst_case_spec("team-b-")
    applied = json.dumps({"apiVersion": "s3.ovh-operator.dev/v1alpha1", "kind": "OVHObjectStorageUser",
                          "metadata": {"name": "huge", "namespace": "team-b"}, "spec": spec})
    cluster.create_body({"apiVersion": "s3.ovh-operator.dev/v1alpha1", "kind": "OVHObjectStorageUser",
                         "metadata": {"name": "huge", "namespace": "team-b", "annotations": {
                             "kubectl.kubernetes.io/last-applied-configuration": applied}}, "spec": spec})
    uid = cluster.wait_ready("huge", namespace="team-b")["metadata"]["uid"]  # handled in full, nothing wedges
    cluster.delete("huge", "team-b")
    cluster.wait_gone("huge", "team-b")
    assert cluster.ovh_users(uid) == []


def test_tightening_a_policy_shrinks_the_user(cluster: World) -> None:
    cluster.create("shrinking", {"grants": [{"bucket": "team-b-data", "access": "readwrite"},
                                            {"bucket": "team-b-logs", "access": "read"}]}, "team-b")
    obj = cluster.wait_ready("shrinking", namespace="team-b")
    narrow = {**own_buckets("b", raw=True), "buckets": [{"name": "team-b-logs", "maxAccess": "read"}]}
    cluster.custom.patch_cluster_custom_object("s3.ovh-operator.dev", "v1alpha1", "ovhobjectstorageaccesspolicies",
                                               "team-b", {"spec": narrow})
    try:
        denied = cluster.wait_condition("shrinking", "False", "AccessDenied", namespace="team-b")
        assert "readwrite on team-b-data" in cluster.ready(denied)["message"]  # type: ignore[index]
        [user] = cluster.ovh_users(obj["metadata"]["uid"])
        assert "team-b-data" not in user["policy"] and "team-b-logs" in user["policy"]
    finally:
        cluster.custom.patch_cluster_custom_object("s3.ovh-operator.dev", "v1alpha1",
                                                   "ovhobjectstorageaccesspolicies", "team-b",
                                                   {"spec": own_buckets("b", raw=True)})
    cluster.wait_ready("shrinking", namespace="team-b")
    cluster.delete("shrinking", "team-b")
    cluster.wait_gone("shrinking", "team-b")


def test_editing_a_secret_in_a_loop_costs_bounded_ovh_calls(cluster: World) -> None:
    cluster.create("noisy", {"grants": [{"bucket": "team-b-data", "access": "read"}]}, "team-b")
    cluster.wait_ready("noisy", namespace="team-b")
    secret_reads = len([c for c in cluster.stack.ovh.calls() if c.path.endswith("/secret")])
    started = time.monotonic()
    edits = 0
    while time.monotonic() - started < 2:  # a tenant rewriting its Secret as fast as it can
        cluster.core.patch_namespaced_secret("noisy-s3", "team-b", {"data": {
            "AWS_SECRET_ACCESS_KEY": base64.b64encode(f"x{edits}".encode()).decode()}})
        edits += 1
        if edits == 5:
            cluster.create("newcomer", {"grants": [{"bucket": "team-a-new", "access": "read"}]})
    restores = len([c for c in cluster.stack.ovh.calls() if c.path.endswith("/secret")]) - secret_reads
    assert edits > 10
    assert restores <= 4  # at once, then after 1, 2 s…: not one OVH read per edit
    cluster.wait_ready("newcomer")  # the other namespace's new resource was not held up
    [user] = cluster.ovh_users(cluster.get("noisy", "team-b")["metadata"]["uid"])  # type: ignore[index]
    wait_for(lambda: (cluster.secret_values("noisy-s3", "team-b") or {}).get("AWS_SECRET_ACCESS_KEY")
             == user["credentials"][0]["secret"], 30, what="the Secret to be restored in the end")


RETAINING = {"retaining": {**ALLOW_EVERYTHING["everything"], "allowRetain": True}}


@pytest.mark.parametrize("world", [{"access": RETAINING}], indirect=True)
def test_an_orphan_left_by_a_finalizer_removed_by_hand_is_swept(world: World) -> None:
    """…while a user retained by deletionPolicy: Retain, and one made by hand, are left alone."""
    world.start_operator({**FAST, "OVH_S3_OPERATOR_ORPHAN_SWEEP_INTERVAL": "1", "OVH_S3_OPERATOR_ORPHAN_GRACE": "0"})
    kept = world.create("kept", {"grants": [{"bucket": "orphan-bucket", "access": "read"}], "deletionPolicy": "Retain"})
    kept_key = world.wait_ready("kept")["status"]["accessKeyId"]
    world.delete("kept")
    world.wait_gone("kept")
    [retained] = world.ovh_users(kept["metadata"]["uid"])
    assert [c["access"] for c in retained["credentials"]] == [kept_key]
    assert "UserRetained" in {e.reason for e in world.core.list_namespaced_event(world.namespace).items}
    obj = world.create("orphan", {"grants": [{"bucket": "orphan-bucket", "access": "read"}]})
    user_id = world.wait_ready("orphan")["status"]["userId"]
    stranger = world.stack.ovh.project.add_user("made by hand")
    world.operators[-1].stop()
    world.delete("orphan")
    world.patch("orphan", {"metadata": {"finalizers": None}})
    world.wait_gone("orphan")
    assert world.ovh_users(obj["metadata"]["uid"])  # the user and its key outlived the resource
    world.restart_operator()
    wait_for(lambda: world.stack.ovh.project.user(user_id) is None, 30, what="the orphan to be swept")
    assert world.stack.ovh.project.user(stranger) is not None
    assert world.ovh_users(kept["metadata"]["uid"]) == [retained]  # swept past, key and all
    assert "its resource team-a/orphan" in world.operator_log()
