"""What every rendering of the install must hold, whichever engine rendered it."""

from __future__ import annotations

import json
import re
from typing import Any

from ovh_s3_operator.config import Settings

from .manifests import Obj, base_rbac, find, grants, one, validate

CHART_OWNED_SETTINGS = {"OVH_S3_OPERATOR_DEFAULT_ACCESS", "OVH_S3_OPERATOR_METRICS_PORT",
                        "OVH_S3_OPERATOR_LEADER_ELECTION", "OVH_S3_OPERATOR_LEADER_ELECTION_NAMESPACE",
                        "OVH_S3_OPERATOR_NAMESPACE"}
"""Variables the chart sets from its own values (defaultAccess, metrics, leaderElection) or fixes (the
Lease and the register live in the release's namespace, where the chart's Roles grant them; so do the
Secrets of OVHProjects, which the chart lets the operator read there)."""
REGISTER_GRANTS = {("", "configmaps", "create", "*"), ("", "configmaps", "get", "ovh-s3-operator-users"),
                   ("", "configmaps", "patch", "ovh-s3-operator-users")}
"""What the operator may do in its own namespace: keep its register of adopted and retained users."""
DOWNWARD_API = {"POD_NAME", "POD_NAMESPACE"}
"""Set from the downward API: the operator's events and leader election name the pod with them."""


def settings_variables() -> set[str]:
    """Every environment variable Settings reads."""
    prefix = Settings.model_config.get("env_prefix", "")
    return {field.validation_alias.choices[0] if field.validation_alias else f"{prefix}{name.upper()}"  # type: ignore[union-attr]
            for name, field in Settings.model_fields.items()}


def unknown_variables(names: set[str]) -> set[str]:
    """The names the operator would never read (typos, removed settings)."""
    known = settings_variables() | DOWNWARD_API
    return names - known


def container(objects: list[Obj]) -> dict[str, Any]:
    [operator] = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    return dict(operator)


def env_names(objects: list[Obj]) -> set[str]:
    return {item["name"] for item in container(objects).get("env", [])}


def plain_env(objects: list[Obj]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container(objects).get("env", []) if "value" in item}


def check_pod_is_hardened(objects: list[Obj]) -> None:
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    context = pod["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] != 0 and context.get("runAsGroup", 1) != 0
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not {"hostNetwork", "hostPID", "hostIPC"} & pod.keys()
    assert all("hostPath" not in volume for volume in pod.get("volumes", []))
    operator = container(objects)
    security = operator["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security.get("privileged", False) is False
    assert operator["resources"]["requests"].keys() >= {"cpu", "memory"} and "memory" in operator["resources"]["limits"]
    # The probe asks the endpoint the operator serves (kopf's --liveness).
    [liveness] = [arg for arg in operator["args"] if arg.startswith("--liveness=")]
    port = re.fullmatch(r"--liveness=http://0\.0\.0\.0:(\d+)(/\S*)", liveness)
    assert port, liveness
    probe = operator["livenessProbe"]["httpGet"]
    named = {p["name"]: p["containerPort"] for p in operator["ports"]}
    assert named.get(probe["port"], probe["port"]) == int(port[1]) and probe["path"] == port[2]


def check_objects_are_valid(objects: list[Obj]) -> None:
    """Kubernetes' own schemas for every object; a ServiceMonitor (an API Kubernetes does not ship,
    whose schema is not available offline) is checked against the Service it scrapes instead."""
    monitors = find(objects, "ServiceMonitor")
    assert validate(obj for obj in objects if obj["kind"] != "ServiceMonitor") == []
    for monitor in monitors:
        check_service_monitor(monitor, objects)


def check_service_monitor(monitor: Obj, objects: list[Obj]) -> None:
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    spec = monitor["spec"]
    assert set(spec) <= {"selector", "namespaceSelector", "endpoints", "jobLabel", "targetLabels"}
    namespace = monitor["metadata"]["namespace"]
    assert spec["namespaceSelector"] == {"matchNames": [namespace]}
    selected = [service for service in find(objects, "Service", namespace=namespace)
                if spec["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()]
    assert len(selected) == 1, "the ServiceMonitor selects exactly the metrics Service"
    [service] = selected
    ports = {port["name"]: port for port in service["spec"]["ports"]}
    metrics_port = {p["name"]: p["containerPort"] for p in container(objects)["ports"]}["metrics"]
    for endpoint in spec["endpoints"]:
        assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout", "scheme"}
        assert endpoint["port"] in ports and endpoint["path"] == "/metrics"
        assert ports[endpoint["port"]]["targetPort"] == "metrics"
        for duration in ("interval", "scrapeTimeout"):
            assert re.fullmatch(r"([0-9]+(ms|s|m|h))+", endpoint.get(duration, "1s"))
    assert plain_env(objects)["OVH_S3_OPERATOR_METRICS_PORT"] == str(metrics_port)


def canonical(rules: list[dict[str, Any]]) -> list[str]:
    """Rules in a comparable form: order of rules and of the items in them does not matter."""
    return sorted(json.dumps({key: sorted(value) for key, value in rule.items()}, sort_keys=True) for rule in rules)


def check_split_by_namespace(roles: list[Obj]) -> dict[str, Obj]:
    """Watching given namespaces: the operator's rules are split between a ClusterRole (what cannot be
    namespaced) and a Role in each watched namespace, which together grant exactly what the cluster-wide
    ClusterRole does, without overlap. Returns those Roles by namespace."""
    [cluster_role] = [role for role in roles if role["kind"] == "ClusterRole"]
    watched = {role["metadata"]["namespace"]: role for role in roles
               if role["kind"] == "Role" and role["metadata"]["name"] == "ovh-s3-operator"}
    reference = grants(one(base_rbac(), "ClusterRole", "ovh-s3-operator")["rules"])
    cluster_wide = grants(cluster_role["rules"])
    assert {resource for _, resource, _, _ in cluster_wide} == {
        "ovhobjectstorageaccesspolicies", "ovhprojects", "ovhprojects/status", "namespaces",
        "customresourcedefinitions"}
    for role in watched.values():
        assert cluster_wide | grants(role["rules"]) == reference
        assert not cluster_wide & grants(role["rules"])
    return watched
