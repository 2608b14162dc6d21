"""The Helm chart, rendered and linted by Helm's own library, then checked against Kubernetes' schemas."""

from __future__ import annotations

import tomllib
from typing import Any

import helm_python
import pytest
import yaml

from ovh_s3_operator.config import Settings
from ovh_s3_operator.credentials import Credentials

from .invariants import (
    CHART_OWNED_SETTINGS,
    REGISTER_GRANTS,
    canonical,
    check_objects_are_valid,
    check_pod_is_hardened,
    check_split_by_namespace,
    container,
    env_names,
    plain_env,
    settings_variables,
    unknown_variables,
)
from .manifests import (
    CHART,
    CRDS,
    NAMESPACE,
    base_rbac,
    chart_crds,
    chart_notes,
    chart_operator_roles,
    find,
    grants,
    lint_chart,
    one,
    render_chart,
)

HA = {
    "replicaCount": 2,
    "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}}},
    "watchNamespaces": ["team-a", "team-b"],
    "credentials": {"existingSecret": "ovh-credentials"},
}
EVERY_SETTING = {
    "OVH_S3_OPERATOR_OVH_REQUESTS_PER_SECOND": 0.5, "OVH_S3_OPERATOR_OVH_BURST": 1000000,
    "OVH_S3_OPERATOR_DRIFT_INTERVAL": 900, "OVH_S3_OPERATOR_ORPHAN_SWEEP": False,
    "OVH_S3_OPERATOR_CLUSTER_ID": "prod-1", "OVH_S3_OPERATOR_REGIONS": "gra,sbg",
    "OVH_S3_OPERATOR_DEFAULT_REGION": "sbg",
}
OTHERS = {
    "image": {"repository": "registry.example/ovh-s3-operator", "tag": "0.1.0-rc1", "digest": "sha256:" + "ab" * 32},
    "leaderElection": {"enabled": True},
    "credentials": {"applicationKey": "ak", "applicationSecret": "as", "consumerKey": "ck", "serviceName": "p1"},
    "defaultAccess": "allow",
    "settings": EVERY_SETTING,
    "logLevel": "debug",
    "logFormat": "plain",
    "metrics": {"enabled": False},
    "serviceAccount": {"create": False, "name": "operator"},
    "rbac": {"tenantRoles": False},
    "podAnnotations": {"example.com/team": "platform"},
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule"}],
}
VALUE_SETS = {"defaults": {}, "ha-namespaced": HA, "others": OTHERS}
values_sets = pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())


@values_sets
def test_helm_lint_is_clean(values: dict[str, Any]) -> None:
    report = lint_chart(values)
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []  # no warnings either (info: no icon)


@values_sets
def test_every_object_is_valid_kubernetes(values: dict[str, Any]) -> None:
    check_objects_are_valid(render_chart(values))


@values_sets
def test_the_pod_is_hardened(values: dict[str, Any]) -> None:
    check_pod_is_hardened(render_chart(values))


def test_defaults_install_one_operator_watching_every_namespace() -> None:
    objects = render_chart()
    assert sorted((obj["kind"], obj["metadata"]["name"]) for obj in objects) == [
        ("ClusterRole", "ovh-s3-operator"), ("ClusterRole", "ovh-s3-operator-edit"),
        ("ClusterRole", "ovh-s3-operator-view"), ("ClusterRoleBinding", "ovh-s3-operator"),
        ("Deployment", "ovh-s3-operator"), ("Role", "ovh-s3-operator-register"),
        ("RoleBinding", "ovh-s3-operator-register"), ("Secret", "ovh-s3-operator-ovh-credentials"),
        ("Service", "ovh-s3-operator-metrics"), ("ServiceAccount", "ovh-s3-operator")]
    operator = container(objects)
    assert operator["image"] == "ghcr.io/ovh-s3-operator/ovh-s3-operator:0.1.0"
    assert operator["args"] == ["run", "--liveness=http://0.0.0.0:8080/healthz", "--log-format=json"]
    assert plain_env(objects) == {"OVH_S3_OPERATOR_DEFAULT_ACCESS": "deny", "OVH_S3_OPERATOR_METRICS_PORT": "9090",
                                  "OVH_S3_OPERATOR_LEADER_ELECTION": "false"}
    assert all(obj["metadata"].get("namespace", NAMESPACE) == NAMESPACE for obj in objects)


@pytest.mark.parametrize("replicas", [1, 2, 3])
def test_leader_election_follows_the_replica_count(replicas: int) -> None:
    objects = render_chart({"replicaCount": replicas})
    deployment = one(objects, "Deployment")
    several = replicas > 1
    assert plain_env(objects)["OVH_S3_OPERATOR_LEADER_ELECTION"] == str(several).lower()
    assert {"POD_NAME", "POD_NAMESPACE"} <= env_names(objects)
    assert deployment["spec"]["strategy"]["type"] == ("RollingUpdate" if several else "Recreate")
    assert len(find(objects, "PodDisruptionBudget")) == several
    leases = [role for role in chart_operator_roles({"replicaCount": replicas})
              if ("coordination.k8s.io", "leases", "get", "ovh-s3-operator") in grants(role["rules"])]
    assert len(leases) == several
    if several:
        [lease_role] = leases
        assert lease_role["kind"] == "Role" and lease_role["metadata"]["namespace"] == NAMESPACE
        assert grants(lease_role["rules"]) == {("coordination.k8s.io", "leases", "create", "*"),
                                               ("coordination.k8s.io", "leases", "get", "ovh-s3-operator"),
                                               ("coordination.k8s.io", "leases", "update", "ovh-s3-operator")}


def test_explicit_leader_election_with_one_replica_rolls_updates() -> None:
    objects = render_chart({"leaderElection": {"enabled": True}})
    assert plain_env(objects)["OVH_S3_OPERATOR_LEADER_ELECTION"] == "true"
    assert one(objects, "Deployment")["spec"]["strategy"]["type"] == "RollingUpdate"
    assert find(objects, "PodDisruptionBudget") == []


def test_cluster_wide_operator_rules_are_those_of_deploy() -> None:
    [cluster_role, register] = chart_operator_roles()
    reference = one(base_rbac(), "ClusterRole", "ovh-s3-operator")
    assert cluster_role["kind"] == "ClusterRole"
    assert canonical(cluster_role["rules"]) == canonical(reference["rules"])
    assert (register["kind"], register["metadata"]["namespace"]) == ("Role", NAMESPACE)
    assert canonical(register["rules"]) == canonical(one(base_rbac(), "Role", "ovh-s3-operator-register")["rules"])
    assert grants(register["rules"]) == REGISTER_GRANTS


def test_watching_namespaces_grants_namespaced_rights_only_there() -> None:
    roles = chart_operator_roles(HA)
    assert check_split_by_namespace(roles).keys() == {"team-a", "team-b"}
    # The Secrets of OVHProjects: read in the release's namespace, and nowhere else.
    [credentials] = [role for role in roles if role["metadata"]["name"] == "ovh-s3-operator-credentials"]
    assert credentials["kind"] == "Role" and credentials["metadata"]["namespace"] == NAMESPACE
    assert grants(credentials["rules"]) == {("", "secrets", "get", "*")}
    assert [role["metadata"]["name"] for role in chart_operator_roles() if role["kind"] == "Role"] == [
        "ovh-s3-operator-register"]  # watching every namespace, the ClusterRole covers the Secrets
    assert container(render_chart(HA))["args"][-2:] == ["--namespace=team-a", "--namespace=team-b"]


def test_tenant_roles_are_those_of_deploy() -> None:
    objects = render_chart()
    for suffix in ("edit", "view"):
        rendered = one(objects, "ClusterRole", f"ovh-s3-operator-{suffix}")
        reference = one(base_rbac(), "ClusterRole", f"ovh-s3-operator-{suffix}")
        assert rendered["rules"] == reference["rules"]
        aggregation = {k: v for k, v in rendered["metadata"]["labels"].items() if k.startswith("rbac.")}
        assert aggregation == {k: v for k, v in reference["metadata"]["labels"].items() if k.startswith("rbac.")}
    assert find(render_chart({"rbac": {"tenantRoles": False}}), "ClusterRole", "ovh-s3-operator-edit") == []


def test_the_chart_crds_are_the_top_level_crds() -> None:
    # The chart's crds/ holds symlinks; this is what Helm's loader (and so helm install and helm
    # package) reads through them.
    assert {name: text.encode() for name, text in chart_crds().items()} == {
        path.name: path.read_bytes() for path in CRDS.glob("*.yaml")}


def test_every_variable_the_chart_sets_is_read_by_the_operator() -> None:
    for values in VALUE_SETS.values():
        assert unknown_variables(env_names(render_chart(values))) == set()
    everything = {"credentials": {"applicationKey": "a", "applicationSecret": "b", "consumerKey": "c",
                                  "clientId": "d", "clientSecret": "e", "serviceName": "f"}}
    secret = one(render_chart(everything), "Secret")
    assert unknown_variables(set(secret["stringData"])) == set()
    assert {key for key in settings_variables() if not key.startswith("OVH_S3_")} == set(secret["stringData"])


def test_the_settings_value_accepts_exactly_the_operators_other_variables() -> None:
    schema = helm_python.Chart.load(CHART).schema
    assert schema is not None
    accepted = set(schema["properties"]["settings"]["propertyNames"]["enum"])
    assert accepted == ({name for name in settings_variables() if name.startswith("OVH_S3_OPERATOR_")}
                        - CHART_OWNED_SETTINGS)


def test_the_operator_reads_the_rendered_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    objects = render_chart(OTHERS)
    for name, value in {**plain_env(objects), **one(objects, "Secret")["stringData"]}.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.default_access == "allow" and Credentials.from_settings(settings).auth_mode == "application"
    assert settings.ovh_burst == 1000000 and settings.ovh_requests_per_second == 0.5
    assert settings.orphan_sweep is False and settings.regions == ("gra", "sbg")
    assert settings.ovh_service_name == "p1" and settings.cluster_id == "prod-1"


def test_image_credentials_and_arguments_follow_the_values() -> None:
    objects = render_chart(OTHERS)
    operator = container(objects)
    assert operator["image"] == f"registry.example/ovh-s3-operator:0.1.0-rc1@sha256:{'ab' * 32}"
    assert operator["args"][-2:] == ["--log-format=plain", "--debug"]
    assert [port["name"] for port in operator["ports"]] == ["healthz"] and find(objects, "Service") == []
    assert plain_env(objects)["OVH_S3_OPERATOR_METRICS_PORT"] == "0"
    assert find(objects, "ServiceAccount") == []
    assert one(objects, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "operator"
    secret = one(objects, "Secret")
    assert operator["envFrom"] == [{"secretRef": {"name": secret["metadata"]["name"]}}]
    assert secret["stringData"] == {"OVH_ENDPOINT": "ovh-eu", "OVH_APPLICATION_KEY": "ak",
                                    "OVH_APPLICATION_SECRET": "as", "OVH_CONSUMER_KEY": "ck", "OVH_SERVICE_NAME": "p1"}
    # Changing the credentials the chart holds restarts the operator.
    changed = render_chart({**OTHERS, "credentials": {**OTHERS["credentials"], "consumerKey": "new"}})
    annotations = [one(rendered, "Deployment")["spec"]["template"]["metadata"]["annotations"]
                   for rendered in (objects, changed)]
    assert annotations[0]["checksum/credentials"] != annotations[1]["checksum/credentials"]
    assert annotations[0]["example.com/team"] == "platform"


def test_an_existing_secret_is_used_as_is() -> None:
    objects = render_chart(HA)
    assert find(objects, "Secret") == []
    assert container(objects)["envFrom"] == [{"secretRef": {"name": "ovh-credentials"}}]
    assert "annotations" not in one(objects, "Deployment")["spec"]["template"]["metadata"]


def test_the_release_name_prefixes_cluster_wide_names() -> None:
    objects = render_chart(release="s3")
    names = {obj["metadata"]["name"] for obj in objects if obj["kind"].startswith("Cluster")}
    assert names == {"s3-ovh-s3-operator", "s3-ovh-s3-operator-edit", "s3-ovh-s3-operator-view"}


@pytest.mark.parametrize(("values", "error"), [
    ({"settings": {"OVH_S3_OPERATOR_DRIFT_INTERVALL": 10}}, helm_python.HelmValuesError),
    ({"settings": {"OVH_S3_OPERATOR_DEFAULT_ACCESS": "allow"}}, helm_python.HelmValuesError),
    ({"settings": {"OVH_S3_OPERATOR_REGIONS": ["gra", "sbg"]}}, helm_python.HelmValuesError),
    ({"watchNamespaces": ["team-*"]}, helm_python.HelmValuesError),
    ({"defaultAccess": "maybe"}, helm_python.HelmValuesError),
    ({"replicaCount": 0}, helm_python.HelmValuesError),
    ({"image": {"digest": "latest"}}, helm_python.HelmValuesError),
    ({"metrics": {"port": 70000}}, helm_python.HelmValuesError),
    ({"replicas": 2}, helm_python.HelmValuesError),
    ({"replicaCount": 2, "leaderElection": {"enabled": False}}, helm_python.HelmRenderError),
    ({"metrics": {"enabled": False, "serviceMonitor": {"enabled": True}}}, helm_python.HelmRenderError),
    ({"serviceAccount": {"create": False}}, helm_python.HelmRenderError),
])
def test_wrong_values_are_refused(values: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        render_chart(values)


def test_notes_say_what_to_do_next() -> None:
    notes = chart_notes()
    assert "OVHCredentialsMissing" in notes and "kubectl apply --server-side --force-conflicts -f" in notes
    assert "OVHCredentialsMissing" not in chart_notes(HA) and "team-a, team-b" in chart_notes(HA)


def test_chart_and_values_are_documented_and_versioned() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((CHART.parents[2] / "pyproject.toml").read_text())["project"]
    assert chart["apiVersion"] == "v2" and chart["appVersion"] == project["version"]
    schema = helm_python.Chart.load(CHART).schema
    assert schema is not None
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(defaults) == set(schema["properties"]) - {"global"}
