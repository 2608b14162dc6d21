"""Authentication, RBAC and the access reviews of the Kubernetes API emulator, in-process (no socket)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from multidict import CIMultiDict

from ovh_s3_operator.manifests import crd_documents
from ovh_s3_operator_sandbox.kube.inprocess import api_client
from ovh_s3_operator_sandbox.kube.server import KubeEmulator, KubeRequest, KubeResponse
from ovh_s3_operator_sandbox.objects import Objects
from ovh_s3_operator_sandbox.stack import OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT, install_operator_rbac

OPERATOR = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_SERVICE_ACCOUNT}"
RBAC = "/apis/rbac.authorization.k8s.io/v1"
OSU = "/apis/s3.ovh-operator.dev/v1alpha1"


class Client:
    """Requests through KubeEmulator.handle with one bearer token (None: no Authorization header)."""

    def __init__(self, kube: KubeEmulator, token: str | None, **headers: str) -> None:
        self.kube = kube
        self.headers = CIMultiDict(headers)
        if token is not None:
            self.headers["Authorization"] = f"Bearer {token}"

    def __call__(self, method: str, path: str, body: Any = None, query: dict[str, str] | None = None,
                 content_type: str = "application/json") -> KubeResponse:
        headers = CIMultiDict(self.headers)
        headers["Content-Type"] = content_type
        data = json.dumps(body).encode() if body is not None else b""
        return self.kube.handle(KubeRequest(method, path, query or {}, headers, data))

    def json(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        return json.loads(self(method, path, body, **kwargs).body)


@pytest.fixture(scope="module")
def kube() -> KubeEmulator:
    emulator = KubeEmulator()
    for crd in crd_documents():
        emulator.install_crd(crd)
    install_operator_rbac(emulator)
    emulator.create_namespace("team-a")
    return emulator


@pytest.fixture(scope="module")
def admin(kube: KubeEmulator) -> Client:
    return Client(kube, kube.admin_token)


@pytest.fixture(scope="module")
def operator(kube: KubeEmulator) -> Client:
    return Client(kube, kube.service_account_token(OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT))


def test_requests_need_a_known_bearer_token(kube: KubeEmulator) -> None:
    for token in (None, "", "wrong"):
        answer = Client(kube, token)("GET", "/api/v1/namespaces")
        assert answer.status == 401
        assert json.loads(answer.body) == {"apiVersion": "v1", "kind": "Status", "metadata": {},
                                           "status": "Failure", "message": "Unauthorized",
                                           "reason": "Unauthorized", "code": 401}
    assert Client(kube, kube.admin_token)("GET", "/api/v1/namespaces").status == 200


def test_service_account_tokens_die_with_the_account(kube: KubeEmulator, admin: Client) -> None:
    token = kube.service_account_token("team-a", "robot")
    assert token == kube.service_account_token("team-a", "robot")
    robot = Client(kube, token)
    who = robot.json("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", {})
    assert who["status"]["userInfo"]["username"] == "system:serviceaccount:team-a:robot"
    assert who["status"]["userInfo"]["groups"] == ["system:serviceaccounts", "system:serviceaccounts:team-a",
                                                   "system:authenticated"]
    assert admin("DELETE", "/api/v1/namespaces/team-a/serviceaccounts/robot").status == 200
    assert robot("GET", "/api").status == 401
    assert kube.service_account_token("team-a", "robot") != token  # a new account, a new token


def test_forbidden_wording(operator: Client) -> None:
    """responsewriters.forbiddenMessage + apierrors.NewForbidden, namespaced and cluster-wide."""
    denied = operator("GET", "/api/v1/namespaces/team-a/configmaps")
    assert denied.status == 403
    assert json.loads(denied.body) == {
        "apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure", "reason": "Forbidden",
        "code": 403, "details": {"kind": "configmaps"},
        "message": f'configmaps is forbidden: User "{OPERATOR}" cannot list resource "configmaps" in API group "" '
                   'in the namespace "team-a"'}
    named = json.loads(operator("PUT", f"{OSU}/namespaces/team-a/ovhobjectstorageusers/x/status", {}).body)
    assert named["message"] == (
        f'ovhobjectstorageusers.s3.ovh-operator.dev "x" is forbidden: User "{OPERATOR}" cannot update resource '
        '"ovhobjectstorageusers/status" in API group "s3.ovh-operator.dev" in the namespace "team-a"')
    assert named["details"] == {"name": "x", "group": "s3.ovh-operator.dev", "kind": "ovhobjectstorageusers"}
    cluster = json.loads(operator("DELETE", f"{OSU}/ovhobjectstorageaccesspolicies/p").body)
    assert cluster["message"].endswith('cannot delete resource "ovhobjectstorageaccesspolicies" in API group '
                                       '"s3.ovh-operator.dev" at the cluster scope')
    path = json.loads(operator("GET", "/metrics").body)
    assert path["message"] == f'forbidden: User "{OPERATOR}" cannot get path "/metrics"'


def test_operator_permissions_follow_deploy_rbac(operator: Client) -> None:
    assert operator("GET", "/api/v1/secrets").status == 200  # list, all namespaces (ClusterRoleBinding)
    assert operator("POST", "/api/v1/namespaces/team-a/secrets", {"metadata": {"name": "s"}}).status == 201
    assert operator("PUT", "/api/v1/namespaces/team-a/secrets/s", {"metadata": {"name": "s"}}).status == 403
    assert operator("DELETE", "/api/v1/namespaces/team-a/secrets").status == 403  # deletecollection
    assert operator("GET", f"{OSU}/ovhobjectstorageusers", query={"watch": "true"}).status != 403
    assert operator("PATCH", f"{OSU}/namespaces/team-a/ovhobjectstorageusers/x/status", {},
                    content_type="application/merge-patch+json").status == 404  # allowed, absent
    assert operator("GET", f"{OSU}/namespaces/team-a/ovhobjectstorageusers/x/status").status == 403
    for path in ("/api", "/apis", "/version", "/api/v1", f"{OSU}"):
        assert operator("GET", path).status in (200, 404), path  # discovery: allowed (404: not in-process)


def test_role_bindings_resource_names_and_subresources(kube: KubeEmulator, admin: Client) -> None:
    robot = Client(kube, kube.service_account_token("team-a", "reader"))
    role = {"metadata": {"name": "read-one"}, "rules": [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"], "resourceNames": ["one"]},
        {"apiGroups": ["*"], "resources": ["*/status"], "verbs": ["get"]}]}
    assert admin("POST", f"{RBAC}/namespaces/team-a/roles", role).status == 201
    binding = {"metadata": {"name": "reader"}, "roleRef": {"kind": "Role", "name": "read-one"},
               "subjects": [{"kind": "ServiceAccount", "name": "reader"}]}  # namespace: the binding's
    stored = admin.json("POST", f"{RBAC}/namespaces/team-a/rolebindings", binding)
    assert stored["roleRef"]["apiGroup"] == "rbac.authorization.k8s.io"  # defaulted
    assert admin("POST", "/api/v1/namespaces/team-a/configmaps", {"metadata": {"name": "one"}}).status == 201
    assert robot("GET", "/api/v1/namespaces/team-a/configmaps/one").status == 200
    assert robot("GET", "/api/v1/namespaces/team-a/configmaps/two").status == 403
    assert robot("GET", "/api/v1/namespaces/team-a/configmaps").status == 403  # a list names nothing
    assert robot("GET", "/api/v1/namespaces/team-a/configmaps",
                 query={"fieldSelector": "metadata.name=one"}).status == 200  # unless it selects one name
    assert robot("GET", "/api/v1/namespaces/default/configmaps/one").status == 403  # another namespace
    assert robot("GET", "/api/v1/namespaces/team-a/status").status == 200  # namespaces/status, in team-a
    assert robot("GET", "/api/v1/namespaces/default/status").status == 403
    changed = admin("PATCH", f"{RBAC}/namespaces/team-a/rolebindings/reader", {"roleRef": {"name": "other"}},
                    content_type="application/merge-patch+json")
    assert changed.status == 422
    assert json.loads(changed.body)["message"] == (
        'RoleBinding.rbac.authorization.k8s.io "reader" is invalid: roleRef: Invalid value: '
        'rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", Kind:"Role", Name:"other"}: cannot change roleRef')


def test_missing_role_is_the_reason(kube: KubeEmulator, admin: Client) -> None:
    robot = Client(kube, kube.service_account_token("team-a", "orphan"))
    binding = {"metadata": {"name": "orphan"}, "roleRef": {"kind": "ClusterRole", "name": "nowhere"},
               "subjects": [{"kind": "ServiceAccount", "name": "orphan", "namespace": "team-a"}]}
    assert admin("POST", f"{RBAC}/clusterrolebindings", binding).status == 201
    message = json.loads(robot("GET", "/api/v1/namespaces/team-a/secrets").body)["message"]
    assert message.endswith(': RBAC: clusterrole.rbac.authorization.k8s.io "nowhere" not found')


def test_aggregated_cluster_roles(kube: KubeEmulator, admin: Client) -> None:
    edit = admin.json("GET", f"{RBAC}/clusterroles/edit")
    osu_rule = {"apiGroups": ["s3.ovh-operator.dev"], "resources": ["ovhobjectstorageusers"],
                "verbs": ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"]}
    assert osu_rule in edit["rules"]  # from deploy/kustomize/base/rbac.yaml's ovh-s3-operator-edit
    assert osu_rule in admin.json("GET", f"{RBAC}/clusterroles/admin")["rules"]
    assert osu_rule not in admin.json("GET", f"{RBAC}/clusterroles/view")["rules"]
    extra = {"metadata": {"name": "extra", "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
             "rules": [{"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["get"]}]}
    assert admin("POST", f"{RBAC}/clusterroles", extra).status == 201
    for role in ("view", "edit", "admin"):  # view is aggregated into edit, edit into admin
        assert extra["rules"][0] in admin.json("GET", f"{RBAC}/clusterroles/{role}")["rules"], role
    assert admin("DELETE", f"{RBAC}/clusterroles/extra").status == 200
    assert extra["rules"][0] not in admin.json("GET", f"{RBAC}/clusterroles/admin")["rules"]
    tenant = Client(kube, kube.service_account_token("team-a", "tenant"))
    binding = {"metadata": {"name": "tenant"}, "roleRef": {"kind": "ClusterRole", "name": "edit"},
               "subjects": [{"kind": "ServiceAccount", "name": "tenant"}]}
    assert admin("POST", f"{RBAC}/namespaces/team-a/rolebindings", binding).status == 201
    body = {"apiVersion": "s3.ovh-operator.dev/v1alpha1", "kind": "OVHObjectStorageUser",
            "metadata": {"name": "mine"}, "spec": {}}
    assert tenant("POST", f"{OSU}/namespaces/team-a/ovhobjectstorageusers", body).status == 201
    assert tenant("PATCH", f"{OSU}/namespaces/team-a/ovhobjectstorageusers/mine/status", {},
                  content_type="application/merge-patch+json").status == 403
    assert tenant("POST", f"{OSU}/namespaces/default/ovhobjectstorageusers", body).status == 403


def test_rbac_validation(admin: Client) -> None:
    role = {"metadata": {"name": "bad"}, "rules": [{"resources": ["pods"]}]}
    answer = json.loads(admin("POST", f"{RBAC}/namespaces/team-a/roles", role).body)
    assert answer["code"] == 422
    assert [c["field"] for c in answer["details"]["causes"]] == ["rules[0].verbs", "rules[0].apiGroups"]
    binding = {"metadata": {"name": "b"}, "roleRef": {"kind": "Role", "name": "r"},
               "subjects": [{"kind": "ServiceAccount", "name": "x"}]}
    answer = json.loads(admin("POST", f"{RBAC}/clusterrolebindings", binding).body)
    assert [c["field"] for c in answer["details"]["causes"]] == ["roleRef.kind", "subjects[0].namespace"]
    assert admin("POST", f"{RBAC}/clusterroles", {"metadata": {"name": "system:ok"}, "rules": []}).status == 201


def test_access_reviews(kube: KubeEmulator, operator: Client) -> None:
    def can(**attributes: str) -> dict[str, Any]:
        review = operator.json("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                               {"spec": {"resourceAttributes": attributes}})
        assert review["kind"] == "SelfSubjectAccessReview"
        status: dict[str, Any] = review["status"]
        return status

    allowed = can(verb="patch", group="s3.ovh-operator.dev", resource="ovhobjectstorageusers",
                  subresource="status", namespace="team-a")
    assert allowed == {"allowed": True, "reason": 'RBAC: allowed by ClusterRoleBinding "ovh-s3-operator" of '
                       'ClusterRole "ovh-s3-operator" to ServiceAccount "ovh-s3-operator/ovh-s3-operator"'}
    assert can(verb="update", group="s3.ovh-operator.dev", resource="ovhobjectstorageusers") == {"allowed": False}
    rules = operator.json("POST", "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
                          {"spec": {"namespace": "team-a"}})["status"]
    assert {"verbs": ["create"], "apiGroups": ["", "events.k8s.io"], "resources": ["events"]} in rules["resourceRules"]
    other = Client(kube, kube.admin_token).json("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", {
        "spec": {"user": OPERATOR, "groups": ["system:authenticated"],
                 "resourceAttributes": {"verb": "list", "resource": "secrets"}}})
    assert other["status"]["allowed"] is True
    assert operator("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", {"spec": {}}).status == 403


def test_impersonation(kube: KubeEmulator, operator: Client) -> None:
    as_operator = Client(kube, kube.admin_token, **{"Impersonate-User": OPERATOR})
    assert as_operator("GET", "/api/v1/namespaces/team-a/configmaps").status == 403
    assert as_operator("GET", "/api/v1/namespaces/team-a/secrets").status == 200
    escalating = Client(kube, operator.headers["Authorization"].split()[1], **{"Impersonate-User": "system:admin"})
    denied = json.loads(escalating("GET", "/api/v1/secrets").body)
    assert denied["message"] == (f'users "system:admin" is forbidden: User "{OPERATOR}" cannot impersonate resource '
                                 '"users" in API group "" at the cluster scope')


def test_in_process_client_with_any_token(kube: KubeEmulator) -> None:
    token = kube.service_account_token(OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT)
    objects = Objects(api_client(kube, token=token), "team-a")
    assert objects.secret("absent") is None  # get secrets: allowed, 404
    with pytest.raises(Exception, match="403"):
        objects.core.list_namespaced_config_map("team-a")
    assert Objects(api_client(kube), "team-a").core.list_namespaced_config_map("team-a").items is not None
