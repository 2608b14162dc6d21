"""The kustomize tree, rendered by ``kubectl kustomize``, then checked against Kubernetes' schemas."""

from __future__ import annotations

import functools

import pytest
import yaml

from .invariants import (
    REGISTER_GRANTS,
    canonical,
    check_objects_are_valid,
    check_pod_is_hardened,
    check_split_by_namespace,
    container,
    env_names,
    plain_env,
    unknown_variables,
)
from .manifests import (
    KUSTOMIZE,
    Obj,
    base_rbac,
    chart_operator_roles,
    find,
    grants,
    kubectl,
    one,
    operator_roles,
    render_kustomization,
)

pytestmark = pytest.mark.skipif(kubectl() is None, reason="kubectl is not installed")
OVERLAYS = ["cluster-wide", "namespaced"]


@functools.cache
def rendered(overlay: str) -> list[Obj]:
    return render_kustomization(KUSTOMIZE / overlay)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_is_valid_kubernetes(overlay: str) -> None:
    check_objects_are_valid(rendered(overlay))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_pod_is_hardened_and_runs_one_operator(overlay: str) -> None:
    objects = rendered(overlay)
    check_pod_is_hardened(objects)
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert unknown_variables(env_names(objects)) == set()
    assert plain_env(objects)["OVH_S3_OPERATOR_DEFAULT_ACCESS"] == "deny"
    assert container(objects)["envFrom"] == [{"secretRef": {"name": "ovh-credentials"}}]
    # The CRDs are applied on their own (crds/): deleting the operator never deletes them.
    assert find(objects, "CustomResourceDefinition") == []


def test_cluster_wide_grants_exactly_the_base_cluster_role() -> None:
    objects = rendered("cluster-wide")
    [cluster_role, register] = operator_roles(objects)
    assert cluster_role == one(base_rbac(), "ClusterRole", "ovh-s3-operator")
    assert register == one(base_rbac(), "Role", "ovh-s3-operator-register")
    assert register["metadata"]["namespace"] == "ovh-s3-operator" and grants(register["rules"]) == REGISTER_GRANTS
    assert not [arg for arg in container(objects)["args"] if arg.startswith("--namespace")]
    for suffix in ("edit", "view"):
        assert one(objects, "ClusterRole", f"ovh-s3-operator-{suffix}") == one(
            base_rbac(), "ClusterRole", f"ovh-s3-operator-{suffix}")


def test_namespaced_grants_namespaced_rights_only_in_the_watched_namespaces() -> None:
    objects = rendered("namespaced")
    roles = operator_roles(objects)
    watched = check_split_by_namespace(roles)
    # The Secrets of OVHProjects: read in the operator's namespace, and nowhere else.
    [credentials] = [role for role in roles if role["metadata"]["name"] == "ovh-s3-operator-credentials"]
    assert credentials["metadata"]["namespace"] == "ovh-s3-operator"
    assert grants(credentials["rules"]) == {("", "secrets", "get", "*")}
    args = [arg for arg in container(objects)["args"] if arg.startswith("--namespace")]
    assert sorted(args) == [f"--namespace={namespace}" for namespace in sorted(watched)] and watched


def test_namespaced_overlay_and_chart_grant_the_same() -> None:
    namespaces = sorted({role["metadata"]["namespace"] for role in operator_roles(rendered("namespaced"))
                         if role["metadata"]["name"] == "ovh-s3-operator" and role["kind"] == "Role"})
    by_engine = [operator_roles(rendered("namespaced")), chart_operator_roles({"watchNamespaces": namespaces})]
    kustomize, helm = ({(role["kind"], role["metadata"].get("namespace"), role["metadata"]["name"]):
                        canonical(role["rules"]) for role in roles} for roles in by_engine)
    assert kustomize == helm


def test_no_manifest_is_left_outside_the_kustomize_tree() -> None:
    # deploy/ holds the two install methods and the credentials example only.
    assert sorted(path.name for path in KUSTOMIZE.parent.iterdir()) == [
        "helm", "kustomize", "ovh-credentials.example.yaml"]
    example = yaml.safe_load((KUSTOMIZE.parent / "ovh-credentials.example.yaml").read_text())
    assert unknown_variables(set(example["stringData"])) == set()
    assert example["metadata"]["name"] == "ovh-credentials"
