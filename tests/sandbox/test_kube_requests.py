"""Request semantics of the Kubernetes API emulator, in-process: dry runs, patches, field validation,
paging, field selectors, protected namespaces, generation."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ovh_s3_operator.manifests import crd_documents
from ovh_s3_operator_sandbox.kube.server import KubeEmulator

from .test_kube_auth import Client

OSU = "/apis/s3.ovh-operator.dev/v1alpha1/namespaces/team-a/ovhobjectstorageusers"
SECRETS = "/api/v1/namespaces/team-a/secrets"
STRATEGIC = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"


def osu(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "s3.ovh-operator.dev/v1alpha1", "kind": "OVHObjectStorageUser",
            "metadata": {"name": name}, "spec": spec}


@pytest.fixture
def kube() -> KubeEmulator:
    emulator = KubeEmulator()
    for crd in crd_documents():
        emulator.install_crd(crd)
    emulator.create_namespace("team-a")
    return emulator


@pytest.fixture
def api(kube: KubeEmulator) -> Client:
    return Client(kube, kube.admin_token)


def test_dry_run_stores_nothing(kube: KubeEmulator, api: Client) -> None:
    dry = {"dryRun": "All"}
    created = api.json("POST", OSU, osu("d"), query=dry)
    assert created["metadata"]["uid"] and "resourceVersion" not in created["metadata"]
    assert kube.get_object("s3.ovh-operator.dev/v1alpha1", "ovhobjectstorageusers", "team-a", "d") is None
    api("POST", OSU, osu("d"))
    patched = api.json("PATCH", f"{OSU}/d", {"spec": {"region": "sbg"}}, query=dry, content_type=MERGE)
    assert patched["spec"]["region"] == "sbg" and patched["metadata"]["generation"] == 2
    assert "region" not in api.json("GET", f"{OSU}/d")["spec"]
    deleted = api("DELETE", f"{OSU}/d", query=dry)
    assert deleted.status == 200 and api("GET", f"{OSU}/d").status == 200
    assert api("DELETE", f"{OSU}/d", {"dryRun": ["All"]}).status == 200 and api("GET", f"{OSU}/d").status == 200
    api("PATCH", f"{OSU}/d", {"metadata": {"finalizers": ["x/y"]}}, content_type=MERGE)
    marked = api.json("DELETE", f"{OSU}/d", query=dry)
    assert marked["metadata"]["deletionTimestamp"]
    assert "deletionTimestamp" not in api.json("GET", f"{OSU}/d")["metadata"]
    assert api("DELETE", SECRETS, query=dry).status == 200  # deletecollection too
    assert api("POST", OSU, osu("e"), query={"dryRun": "Some"}).status == 400


def test_field_validation(api: Client) -> None:
    body = osu("f", regoin="gra")
    strict = api("POST", OSU, body, query={"fieldValidation": "Strict"})
    assert strict.status == 400 and json.loads(strict.body)["message"] == (
        'OVHObjectStorageUser in version "v1alpha1" cannot be handled as a OVHObjectStorageUser: strict decoding '
        'error: unknown field "spec.regoin"')
    warned = api("POST", OSU, {**body, "metadata": {"name": "f", "bogus": 1}})
    assert warned.status == 201 and ("Warning", '299 - "unknown field \\"metadata.bogus\\""') in warned.headers
    assert ("Warning", '299 - "unknown field \\"spec.regoin\\""') in warned.headers
    stored = json.loads(warned.body)
    assert "regoin" not in stored["spec"] and "bogus" not in stored["metadata"]
    secret = api("POST", SECRETS, {"metadata": {"name": "s"}, "spec": {}}, query={"fieldValidation": "Strict"})
    assert json.loads(secret.body)["message"].endswith('strict decoding error: unknown field "spec"')
    patched = api("PATCH", f"{OSU}/f", {"spec": {"x": 1}}, query={"fieldValidation": "Strict"}, content_type=MERGE)
    assert json.loads(patched.body)["message"] == 'strict decoding error: unknown field "spec.x"'
    ignored = api("POST", SECRETS, {"metadata": {"name": "t"}, "extra": 1}, query={"fieldValidation": "Ignore"})
    assert ignored.status == 201 and not ignored.headers and "extra" not in json.loads(ignored.body)


def test_strategic_merge_patch_of_built_ins(api: Client) -> None:
    owner = {"apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": "u1"}
    api("POST", SECRETS, {"metadata": {"name": "s", "finalizers": ["a/b"], "ownerReferences": [owner],
                                       "labels": {"x": "1", "y": "2"}}, "data": {"k": "dg=="}})
    patch = {"metadata": {"finalizers": ["c/d"], "ownerReferences": [{**owner, "uid": "u2", "name": "p"}],
                          "labels": {"$retainKeys": ["x"], "x": "3"}}}
    merged = api.json("PATCH", f"{SECRETS}/s", patch, content_type=STRATEGIC)["metadata"]
    assert merged["finalizers"] == ["a/b", "c/d"]  # merged as a set
    assert [o["uid"] for o in merged["ownerReferences"]] == ["u1", "u2"]  # merged by uid
    assert merged["labels"] == {"x": "3"}
    patch = {"metadata": {"ownerReferences": [{"uid": "u1", "$patch": "delete"}],
                          "$deleteFromPrimitiveList/finalizers": ["a/b"]}, "data": {"$patch": "replace", "n": "bg=="}}
    result = api.json("PATCH", f"{SECRETS}/s", patch, content_type=STRATEGIC)
    assert [o["uid"] for o in result["metadata"]["ownerReferences"]] == ["u2"]
    assert result["metadata"]["finalizers"] == ["c/d"] and result["data"] == {"n": "bg=="}
    refused = api("PATCH", f"{OSU}/x", {}, content_type=STRATEGIC)
    assert refused.status == 415 and "application/merge-patch+json" in json.loads(refused.body)["message"]
    assert api("PATCH", f"{SECRETS}/s", {}, content_type="application/apply-patch+yaml").status == 415


def test_list_paging(kube: KubeEmulator, api: Client) -> None:
    for index in range(5):
        api("POST", SECRETS, {"metadata": {"name": f"s{index}"}})
    first = api.json("GET", SECRETS, query={"limit": "2"})
    assert [i["metadata"]["name"] for i in first["items"]] == ["s0", "s1"]
    assert first["metadata"]["remainingItemCount"] == 3
    second = api.json("GET", SECRETS, query={"limit": "2", "continue": first["metadata"]["continue"]})
    assert [i["metadata"]["name"] for i in second["items"]] == ["s2", "s3"]
    assert second["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    last = api.json("GET", SECRETS, query={"limit": "2", "continue": second["metadata"]["continue"]})
    assert [i["metadata"]["name"] for i in last["items"]] == ["s4"] and "continue" not in last["metadata"]
    assert api("GET", SECRETS, query={"continue": "garbage"}).status == 400
    small = KubeEmulator(event_log_size=3)
    small_api = Client(small, small.admin_token)
    for index in range(3):
        small_api("POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": f"c{index}"}})
    token = small_api.json("GET", "/api/v1/namespaces/default/configmaps", query={"limit": "1"})["metadata"]
    for index in range(5):
        small_api("POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": f"d{index}"}})
    expired = small_api("GET", "/api/v1/namespaces/default/configmaps", query={"continue": token["continue"]})
    assert expired.status == 410 and json.loads(expired.body)["reason"] == "Expired"


def test_field_selectors_by_kind(api: Client) -> None:
    assert api("GET", SECRETS, query={"fieldSelector": "type=Opaque,metadata.name=x"}).status == 200
    assert api("GET", "/api/v1/events", query={"fieldSelector": "involvedObject.uid=u,reason=R"}).status == 200
    wrong = api("GET", SECRETS, query={"fieldSelector": "data.k=v"})
    assert wrong.status == 400 and json.loads(wrong.body)["message"] == "field label not supported: data.k"
    custom = json.loads(api("GET", OSU, query={"fieldSelector": "spec.region=gra"}).body)
    assert custom["code"] == 400
    assert custom["message"] == ('"spec.region" is not a known field selector: only "metadata.name", '
                                 '"metadata.namespace"')


def test_system_namespaces(api: Client) -> None:
    namespaces = {ns["metadata"]["name"]: ns for ns in api.json("GET", "/api/v1/namespaces")["items"]}
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= set(namespaces)
    assert namespaces["kube-system"]["metadata"]["labels"] == {"kubernetes.io/metadata.name": "kube-system"}
    for name in ("default", "kube-system", "kube-public"):
        denied = api("DELETE", f"/api/v1/namespaces/{name}")
        assert denied.status == 403
        message = json.loads(denied.body)["message"]
        assert message == f'namespaces "{name}" is forbidden: this namespace may not be deleted'


def test_generation_only_where_the_api_server_sets_it(api: Client) -> None:
    secret = api.json("POST", SECRETS, {"metadata": {"name": "g"}})
    assert "generation" not in secret["metadata"]
    assert api.json("POST", OSU, osu("g"))["metadata"]["generation"] == 1


def _wait(predicate: Any, what: str) -> None:
    from ovh_s3_operator_sandbox.stack import wait_for

    wait_for(predicate, 5.0, interval=0.01, what=what)


def test_garbage_collection_policies(kube: KubeEmulator, api: Client) -> None:
    configmaps = "/api/v1/namespaces/team-a/configmaps"

    def owner(name: str, **meta: Any) -> dict[str, Any]:
        created = api.json("POST", configmaps, {"metadata": {"name": name, **meta}})
        return {"apiVersion": "v1", "kind": "ConfigMap", "name": name, "uid": created["metadata"]["uid"]}

    def dependent(name: str, *owners: dict[str, Any]) -> None:
        assert api("POST", SECRETS, {"metadata": {"name": name, "ownerReferences": list(owners)}}).status == 201

    def exists(path: str) -> bool:
        return api("GET", path).status == 200

    # Background: the owner goes at once, the dependent later.
    dependent("b-dep", owner("b"))
    with kube.garbage_collector.hold():
        assert api("DELETE", f"{configmaps}/b").status == 200 and exists(f"{SECRETS}/b-dep")
    _wait(lambda: not exists(f"{SECRETS}/b-dep"), "the background collection")
    # Foreground: the owner stays until its blocking dependent is gone.
    foreground = owner("f")
    dependent("f-dep", {**foreground, "blockOwnerDeletion": True})
    marked = api.json("DELETE", f"{configmaps}/f", {"propagationPolicy": "Foreground"})
    assert "foregroundDeletion" in marked["metadata"]["finalizers"]
    _wait(lambda: not exists(f"{configmaps}/f"), "the foreground deletion")
    assert not exists(f"{SECRETS}/f-dep")
    # Orphan, with a finalizer holding the owner: the dependent is released anyway.
    dependent("o-dep", owner("o", finalizers=["example.com/hold"]))
    api("DELETE", f"{configmaps}/o", query={"propagationPolicy": "Orphan"})
    _wait(lambda: "ownerReferences" not in api.json("GET", f"{SECRETS}/o-dep")["metadata"], "the orphaning")
    assert api.json("GET", f"{configmaps}/o")["metadata"]["finalizers"] == ["example.com/hold"]
    # A dependent whose owner never existed is collected.
    dependent("stray", {"apiVersion": "v1", "kind": "ConfigMap", "name": "ghost", "uid": "no-such-uid"})
    _wait(lambda: not exists(f"{SECRETS}/stray"), "the stray dependent collected")


def test_cel_rules_list_types_and_formats(kube: KubeEmulator, api: Client) -> None:
    admin_with_prefix = osu("c", grants=[{"bucket": "abc", "access": "admin", "prefix": "p/"}])
    refused = json.loads(api("POST", OSU, admin_with_prefix).body)
    assert refused["message"] == (
        'OVHObjectStorageUser.s3.ovh-operator.dev "c" is invalid: spec.grants[0]: Invalid value: "object": admin '
        "access applies to the whole bucket; remove prefix or use readwrite")
    duplicate = json.loads(api("POST", OSU, osu("c", roles=["objectstore_operator", "objectstore_operator"])).body)
    assert duplicate["details"]["causes"] == [{"reason": "FieldValueDuplicate", "field": "spec.roles[1]",
                                               "message": 'Duplicate value: "objectstore_operator"'}]
    api("POST", OSU, osu("c"))
    conditions = [{"type": "Ready", "status": "True", "lastTransitionTime": "yesterday"}]
    bad_time = json.loads(api("PATCH", f"{OSU}/c/status", {"status": {"conditions": conditions}},
                              content_type=MERGE).body)
    assert bad_time["message"].endswith("status.conditions[0].lastTransitionTime: Invalid value: \"yesterday\": "
                                        "status.conditions[0].lastTransitionTime in body must be of type date-time: "
                                        '"yesterday"')
    # A transition rule (oldSelf), with messageExpression: checked on updates only.
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "widgets.example.com"},
           "spec": {"group": "example.com", "scope": "Namespaced",
                    "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                    "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                        "type": "object", "properties": {"spec": {"type": "object", "properties": {
                            "size": {"type": "string", "x-kubernetes-validations": [
                                {"rule": "self == oldSelf", "messageExpression": "'size is immutable, was ' + oldSelf"},
                            ]}}}}}}}]}}
    kube.install_crd(crd)
    widgets = "/apis/example.com/v1/namespaces/team-a/widgets"
    assert api("POST", widgets, {"metadata": {"name": "w"}, "spec": {"size": "s"}}).status == 201
    changed = json.loads(api("PATCH", f"{widgets}/w", {"spec": {"size": "l"}}, content_type=MERGE).body)
    assert changed["message"].endswith('spec.size: Invalid value: "string": size is immutable, was s')


def test_metadata_and_secret_validation(api: Client) -> None:
    def causes(answer: Any) -> list[str]:
        return [f"{c['field']}: {c['message']}" for c in json.loads(answer.body)["details"]["causes"]]

    labels = api("POST", SECRETS, {"metadata": {"name": "l", "labels": {"bad key": "v", "k": "bad value!"}}})
    assert labels.status == 422
    assert [c.split(":")[0] for c in causes(labels)] == ["metadata.labels", "metadata.labels"]
    assert "name part must consist of alphanumeric characters" in causes(labels)[0]
    reference = {"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "u", "controller": True}
    owners = api("POST", SECRETS, {"metadata": {"name": "o", "ownerReferences": [
        {**reference, "uid": ""}, {**reference, "uid": "v"}, {**reference, "uid": "w"}]}})
    assert causes(owners)[0] == 'metadata.ownerReferences.uid: Invalid value: "": uid must not be empty'
    assert "Only one reference can have Controller set to true" in causes(owners)[1]
    key = api("POST", SECRETS, {"metadata": {"name": "k"}, "stringData": {"bad/key": "v"}})
    assert causes(key)[0].startswith('stringData[bad/key]: Invalid value: "bad/key": a valid config key must')
    api("POST", SECRETS, {"metadata": {"name": "frozen"}, "data": {"a": "YQ=="}, "immutable": True})
    frozen = api("PATCH", f"{SECRETS}/frozen", {"data": {"a": "Yg=="}}, content_type=MERGE)
    assert causes(frozen) == ["data: Forbidden: field is immutable when `immutable` is set"]
    retyped = api("PATCH", f"{SECRETS}/frozen", {"type": "kubernetes.io/tls"}, content_type=MERGE)
    assert causes(retyped) == ['type: Invalid value: "kubernetes.io/tls": field is immutable']
