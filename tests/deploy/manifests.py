"""Render the production install with its real engines and read what it grants.

The Helm chart is rendered and linted by Helm's own library (``helm-python-sdk`` embeds Helm v4's Go
SDK), the kustomize tree by ``kubectl kustomize``; nothing here re-implements templating. The
functions :func:`chart_operator_roles` and :func:`kustomize_operator_roles` give the Roles and
ClusterRoles the operator's ServiceAccount gets, e.g. to compare with what a Kubernetes emulator that
enforces RBAC lets the operator do.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import helm_python
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "ovh-s3-operator"
KUSTOMIZE = ROOT / "deploy" / "kustomize"
CRDS = ROOT / "crds"
RELEASE = "ovh-s3-operator"
NAMESPACE = "ovh-s3-operator"
KUBERNETES_VERSION = "1.37"
"""The newest Kubernetes whose schemas ``kubernetes-validate`` ships; rendered objects must validate against it."""

Obj = dict[str, Any]

@functools.cache
def _chart() -> helm_python.Chart:
    return helm_python.Chart.load(CHART)


def chart_crds() -> dict[str, str]:
    """The CRD files as Helm's loader reads them from the chart: file name → text."""
    return {Path(crd["name"]).name: crd["data"] for crd in _chart().crds}


def render_chart(values: Mapping[str, Any] | None = None, *, release: str = RELEASE,
                 namespace: str = NAMESPACE) -> list[Obj]:
    """The objects ``helm install`` would create from the templates (the CRDs of crds/ aside)."""
    rendered = _chart().render(dict(values or {}), name=release, namespace=namespace, is_install=True)
    return [doc for name, text in sorted(rendered.items()) if name.endswith(".yaml")
            for doc in yaml.safe_load_all(text) if doc]


def chart_notes(values: Mapping[str, Any] | None = None) -> str:
    rendered = _chart().render(dict(values or {}), name=RELEASE, namespace=NAMESPACE, is_install=True)
    return next(text for name, text in rendered.items() if name.endswith("NOTES.txt"))


def lint_chart(values: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``helm lint --strict`` on the chart directory: ``{"messages": [{"severity", "path", "error"}], "errors"}``."""
    return helm_python.lint(CHART, dict(values or {}), strict=True, namespace=NAMESPACE,
                            kube_version=f"v{KUBERNETES_VERSION}.0")


def kubectl() -> str | None:
    return shutil.which("kubectl")


def render_kustomization(path: Path) -> list[Obj]:
    """``kubectl kustomize PATH``, parsed (with kustomize's default load restrictor)."""
    result = subprocess.run([kubectl() or "kubectl", "kustomize", str(path)], capture_output=True, text=True,
                            check=False, timeout=60)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def validate(objects: Iterable[Obj]) -> list[str]:
    """Each object checked against Kubernetes' OpenAPI schemas (strict: unknown fields are errors),
    as ``kind/name: problem`` lines. Objects of APIs Kubernetes does not ship (e.g. a ServiceMonitor)
    must be checked by the caller: they are reported as having no schema."""
    problems = []
    for obj in objects:
        where = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            problems.append(f"{where}: {error.message} at {'/'.join(map(str, error.absolute_path))}")
        except kubernetes_validate.SchemaNotFoundError as error:
            problems.append(f"{where}: {error.message}")
    return problems


def find(objects: Iterable[Obj], kind: str, name: str | None = None, namespace: str | None = None) -> list[Obj]:
    return [obj for obj in objects if obj["kind"] == kind
            and (name is None or obj["metadata"]["name"] == name)
            and (namespace is None or obj["metadata"].get("namespace") == namespace)]


def one(objects: Iterable[Obj], kind: str, name: str | None = None, namespace: str | None = None) -> Obj:
    [found] = find(objects, kind, name, namespace)
    return found


def operator_service_account(objects: Iterable[Obj]) -> tuple[str, str]:
    """(namespace, name) of the ServiceAccount the operator's Deployment runs as."""
    deployment = one(objects, "Deployment")
    return deployment["metadata"]["namespace"], deployment["spec"]["template"]["spec"]["serviceAccountName"]


def operator_roles(objects: list[Obj]) -> list[Obj]:
    """The ClusterRoles and Roles bound to the operator's ServiceAccount (by ClusterRoleBindings and
    RoleBindings among ``objects``). A Role comes with its namespace; a ClusterRole bound by a
    RoleBinding would apply only in that binding's namespace, and is returned as a Role there."""
    namespace, name = operator_service_account(objects)
    subject = {"kind": "ServiceAccount", "name": name, "namespace": namespace}
    roles = []
    for binding in find(objects, "ClusterRoleBinding") + find(objects, "RoleBinding"):
        if subject not in binding.get("subjects", []):
            continue
        ref = binding["roleRef"]
        where = binding["metadata"].get("namespace") if ref["kind"] == "Role" else None
        role = one(objects, ref["kind"], ref["name"], where)
        if binding["kind"] == "RoleBinding" and ref["kind"] == "ClusterRole":
            role = {**role, "kind": "Role", "metadata": {**role["metadata"],
                                                          "namespace": binding["metadata"]["namespace"]}}
        roles.append(role)
    return roles


def chart_operator_roles(values: Mapping[str, Any] | None = None, *, namespace: str = NAMESPACE) -> list[Obj]:
    """The Roles and ClusterRoles the chart grants the operator, for these values."""
    return operator_roles(render_chart(values, namespace=namespace))


def kustomize_operator_roles(overlay: str = "cluster-wide") -> list[Obj]:
    """The Roles and ClusterRoles an overlay of deploy/kustomize grants the operator."""
    return operator_roles(render_kustomization(KUSTOMIZE / overlay))


def base_rbac() -> list[Obj]:
    """deploy/kustomize/base/rbac.yaml: the reference for what the operator may do."""
    return [doc for doc in yaml.safe_load_all((KUSTOMIZE / "base" / "rbac.yaml").read_text()) if doc]


def grants(rules: Iterable[Mapping[str, Any]]) -> set[tuple[str, str, str, str]]:
    """Rules as the set of (apiGroup, resource, verb, resourceName or '*') they allow."""
    return {(group, resource, verb, name)
            for rule in rules for group in rule.get("apiGroups", []) for resource in rule.get("resources", [])
            for verb in rule["verbs"] for name in rule.get("resourceNames") or ["*"]}
