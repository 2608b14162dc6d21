"""Authentication, impersonation and RBAC authorization, as kube-apiserver does them.

Authentication: bearer tokens only, as a server started with ``--anonymous-auth=false``: a request
without a known token answers 401 ``Unauthorized`` (apiserver ``pkg/endpoints/filters/authentication.go``,
``Unauthorized``). Tokens map to the emulator's admin (user ``system:admin`` in group
``system:masters``) or to a ServiceAccount (``system:serviceaccount:NS:NAME`` in groups
``system:serviceaccounts``, ``system:serviceaccounts:NS``), which must still exist with the uid it
had when the token was issued (as bound tokens are checked, ``pkg/serviceaccount/legacy.go``).
Every authenticated user is also in ``system:authenticated``.

Impersonation (``Impersonate-User``/``Impersonate-Group`` headers, ``kubectl --as``) needs the verb
``impersonate`` on ``users``/``groups``/``serviceaccounts`` (apiserver ``pkg/endpoints/filters/impersonation.go``).

Authorization: ``system:masters`` is allowed everything (the privileged-group authorizer that runs
before RBAC), every other request is checked by RBAC exactly as ``plugin/pkg/auth/authorizer/rbac/rbac.go``
does: ClusterRoleBindings everywhere, then the RoleBindings of the request's namespace; rules match by
verb, API group, ``resource[/subresource]`` (with ``*`` and ``*/subresource``), resourceNames and
nonResourceURLs (``pkg/apis/rbac/v1/evaluation_helpers.go``). Request attributes are derived as
``k8s.io/apiserver/pkg/endpoints/request/requestinfo.go`` does (a list or watch with
``fieldSelector=metadata.name=X`` is checked against resourceNames; a namespace is its own namespace;
DELETE of a collection is ``deletecollection``). Denials answer 403 with the message of
``responsewriters.forbiddenMessage`` and ``apierrors.NewForbidden``. Aggregated ClusterRoles get their
rules from the roles their ``aggregationRule`` selects, as the clusterrole-aggregation controller
fills them (here at once, on every ClusterRole change, rather than after a controller's queue).

The bootstrap policy (``plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go``) is created
with the emulator: ``cluster-admin`` (bound to ``system:masters``), ``system:discovery``,
``system:basic-user`` and ``system:public-info-viewer`` (bound to ``system:authenticated``) and the
aggregated ``admin``, ``edit`` and ``view`` roles, whose own rules cover only the resources the
emulator serves. Privilege-escalation checks on writes of roles and bindings are not emulated.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from ovh_s3_operator_sandbox.kube.model import (
    CLUSTERROLEBINDINGS,
    CLUSTERROLES,
    RBAC_GROUP,
    ROLEBINDINGS,
    ROLES,
    ApiError,
    FieldError,
    Obj,
    ResourceType,
)

AUTHENTICATED = "system:authenticated"
MASTERS = "system:masters"
SA_PREFIX = "system:serviceaccount:"


@dataclasses.dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""

    @property
    def is_master(self) -> bool:
        return MASTERS in self.groups

    def info(self) -> Obj:
        """authentication.k8s.io/v1 UserInfo."""
        info: Obj = {"username": self.name, "groups": list(self.groups)}
        if self.uid:
            info["uid"] = self.uid
        return info


ADMIN = User("system:admin", (MASTERS, AUTHENTICATED))


def service_account_user(namespace: str, name: str, uid: str = "") -> User:
    """``pkg/serviceaccount/util.go``: UserInfo of a ServiceAccount."""
    groups = ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", AUTHENTICATED)
    return User(f"{SA_PREFIX}{namespace}:{name}", groups, uid)


def split_service_account(username: str) -> tuple[str, str] | None:
    if not username.startswith(SA_PREFIX):
        return None
    namespace, _, name = username[len(SA_PREFIX):].partition(":")
    return (namespace, name) if namespace and name and ":" not in name else None


@dataclasses.dataclass(frozen=True)
class Attributes:
    """authorizer.Attributes of one request."""

    user: User
    verb: str
    resource_request: bool
    path: str = ""
    group: str = ""
    version: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""

    @property
    def combined_resource(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource

    def forbidden(self, reason: str = "") -> ApiError:
        """``responsewriters.Forbidden``: forbiddenMessage, the authorizer's reason, ``apierrors.NewForbidden``."""
        if not self.resource_request:
            message = f"User {_q(self.user.name)} cannot {self.verb} path {_q(self.path)}"
        elif self.namespace:
            message = (f"User {_q(self.user.name)} cannot {self.verb} resource {_q(self.combined_resource)} in API "
                       f"group {_q(self.group)} in the namespace {_q(self.namespace)}")
        else:
            message = (f"User {_q(self.user.name)} cannot {self.verb} resource {_q(self.combined_resource)} in API "
                       f"group {_q(self.group)} at the cluster scope")
        if reason:
            message = f"{message}: {reason}"
        group_resource = f"{self.resource}.{self.group}" if self.group else self.resource
        if not group_resource:
            text = f"forbidden: {message}"
        elif self.name:
            text = f"{group_resource} {_q(self.name)} is forbidden: {message}"
        else:
            text = f"{group_resource} is forbidden: {message}"
        return ApiError(403, text, details={"name": self.name, "group": self.group, "kind": self.resource})


def _q(text: str) -> str:
    """Go's %q for the strings that appear in these messages."""
    return json.dumps(text, ensure_ascii=False)


_VALID_SEGMENT = re.compile(r"[^/%]+")


def resource_attributes(user: User, verb: str, group: str, version: str, resource: str, namespace: str | None,
                        name: str | None, subresource: str | None, field_selector: str | None = None) -> Attributes:
    """The attributes of a resource request (``requestinfo.go``)."""
    if resource == "namespaces" and group == "" and name:
        namespace = name  # /api/v1/namespaces/NAME is in its own namespace
    if not name and verb in ("list", "watch") and field_selector:
        terms = [term.strip() for term in field_selector.split(",")]
        names = [term.split("=", 1)[1].lstrip("=") for term in terms
                 if term.startswith(("metadata.name=", "metadata.name=="))]
        if len(names) == 1 and _VALID_SEGMENT.fullmatch(names[0]) and names[0] not in (".", ".."):
            name = names[0]
    return Attributes(user, verb, True, group=group, version=version, resource=resource,
                      subresource=subresource or "", namespace=namespace or "", name=name or "")


def non_resource_attributes(user: User, method: str, path: str) -> Attributes:
    verb = {"GET": "get", "HEAD": "get", "POST": "post", "PUT": "put", "PATCH": "patch",
            "DELETE": "delete"}.get(method.upper(), method.lower())
    return Attributes(user, verb, False, path=path)


# ------------------------------------------------------------------------------------------- rules

def _verb_matches(rule: Mapping[str, Any], verb: str) -> bool:
    verbs = rule.get("verbs") or ()
    return "*" in verbs or verb in verbs


def _group_matches(rule: Mapping[str, Any], group: str) -> bool:
    groups = rule.get("apiGroups") or ()
    return "*" in groups or group in groups


def _resource_matches(rule: Mapping[str, Any], combined: str, subresource: str) -> bool:
    for resource in rule.get("resources") or ():
        if resource in ("*", combined):
            return True
        if subresource and resource == f"*/{subresource}":
            return True
    return False


def _name_matches(rule: Mapping[str, Any], name: str) -> bool:
    names = rule.get("resourceNames") or ()
    return not names or name in names


def _url_matches(rule: Mapping[str, Any], path: str) -> bool:
    for url in rule.get("nonResourceURLs") or ():
        if url == "*" or url == path or (url.endswith("*") and path.startswith(url[:-1])):
            return True
    return False


def rule_allows(attributes: Attributes, rule: Mapping[str, Any]) -> bool:
    """``RuleAllows`` of ``plugin/pkg/auth/authorizer/rbac/rbac.go``."""
    if not _verb_matches(rule, attributes.verb):
        return False
    if attributes.resource_request:
        return (_group_matches(rule, attributes.group)
                and _resource_matches(rule, attributes.combined_resource, attributes.subresource)
                and _name_matches(rule, attributes.name))
    return _url_matches(rule, attributes.path)


def _applies_to(user: User, subject: Mapping[str, Any], namespace: str) -> bool:
    """``appliesToUser``: a ServiceAccount subject without namespace is in the binding's namespace."""
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "User":
        return user.name == name
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        sa_namespace = subject.get("namespace") or namespace
        return bool(sa_namespace) and user.name == f"{SA_PREFIX}{sa_namespace}:{name}"
    return False


def _describe_subject(subject: Mapping[str, Any], namespace: str) -> str:
    if subject.get("kind") == "ServiceAccount":
        return f"ServiceAccount {_q(str(subject.get('name')) + '/' + (subject.get('namespace') or namespace))}"
    return f"{subject.get('kind')} {_q(str(subject.get('name')))}"


def match_labels(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A metav1.LabelSelector; an empty selector selects everything."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or ():
        key, operator, values = expression.get("key"), expression.get("operator"), expression.get("values") or ()
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


Finder = Callable[[ResourceType, str | None, str], Obj | None]
Lister = Callable[[ResourceType, str | None], list[Obj]]


@dataclasses.dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""


class RBAC:
    """The RBAC authorizer over the stored roles and bindings."""

    def __init__(self, find: Finder, list_objects: Lister) -> None:
        self._find = find
        self._list = list_objects

    def _role_rules(self, ref: Mapping[str, Any], namespace: str) -> list[Mapping[str, Any]]:
        kind, name = ref.get("kind"), str(ref.get("name", ""))
        if kind == "ClusterRole":
            role = self._find(CLUSTERROLES, None, name)
            if role is None:
                raise LookupError(f'clusterrole.rbac.authorization.k8s.io "{name}" not found')
        elif kind == "Role" and namespace:
            role = self._find(ROLES, namespace, name)
            if role is None:
                raise LookupError(f'role.rbac.authorization.k8s.io "{name}" not found')
        else:
            raise LookupError(f"unsupported role reference kind: {kind!r}")
        return list(role.get("rules") or ())

    def _visit(self, user: User, namespace: str) -> Iterator[tuple[str, Mapping[str, Any] | None, str]]:
        """(source, rule, error) for every rule that applies to the user, as ``VisitRulesFor``."""
        bindings = [(binding, "") for binding in self._list(CLUSTERROLEBINDINGS, None)]
        if namespace:
            bindings += [(binding, namespace) for binding in self._list(ROLEBINDINGS, namespace)]
        for binding, binding_namespace in bindings:
            subject = next((s for s in binding.get("subjects") or () if _applies_to(user, s, binding_namespace)),
                           None)
            if subject is None:
                continue
            ref = binding.get("roleRef") or {}
            name = binding["metadata"]["name"]
            if binding_namespace:
                source = (f"RoleBinding {_q(name + '/' + binding_namespace)} of {ref.get('kind')} "
                          f"{_q(str(ref.get('name')))} to {_describe_subject(subject, binding_namespace)}")
            else:
                source = (f"ClusterRoleBinding {_q(name)} of {ref.get('kind')} {_q(str(ref.get('name')))} to "
                          f"{_describe_subject(subject, '')}")
            try:
                rules = self._role_rules(ref, binding_namespace)
            except LookupError as exc:
                yield source, None, str(exc)
                continue
            for rule in rules:
                yield source, rule, ""

    def authorize(self, attributes: Attributes) -> Decision:
        if attributes.user.is_master:
            return Decision(True)
        errors: list[str] = []
        for source, rule, error in self._visit(attributes.user, attributes.namespace):
            if error:
                errors.append(error)
            elif rule is not None and rule_allows(attributes, rule):
                return Decision(True, f"RBAC: allowed by {source}")
        if not errors:
            return Decision(False)
        return Decision(False, "RBAC: " + (errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"))

    def rules(self, user: User, namespace: str) -> tuple[list[Obj], list[Obj], bool]:
        """SelfSubjectRulesReview: the resource rules, the non-resource rules, and whether it is incomplete."""
        resource_rules: list[Obj] = []
        url_rules: list[Obj] = []
        incomplete = False
        if user.is_master:
            return ([{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                    [{"verbs": ["*"], "nonResourceURLs": ["*"]}], False)
        for _, rule, error in self._visit(user, namespace):
            if error or rule is None:
                incomplete = True
            elif rule.get("nonResourceURLs"):
                url_rules.append({"verbs": list(rule.get("verbs") or ()),
                                  "nonResourceURLs": list(rule["nonResourceURLs"])})
            else:
                resource_rules.append({key: list(rule[key]) for key in
                                       ("verbs", "apiGroups", "resources", "resourceNames") if rule.get(key)})
        return resource_rules, url_rules, incomplete

    def aggregated_rules(self, role: Mapping[str, Any]) -> list[Obj] | None:
        """The rules the aggregation controller gives an aggregated ClusterRole (None: not aggregated).

        ``pkg/controller/clusterroleaggregation``: the rules of every other ClusterRole any selector
        matches, in name order, without duplicates."""
        selectors = (role.get("aggregationRule") or {}).get("clusterRoleSelectors")
        if selectors is None:
            return None
        name = role["metadata"]["name"]
        rules: list[Obj] = []
        for other in sorted(self._list(CLUSTERROLES, None), key=lambda r: r["metadata"]["name"]):
            if other["metadata"]["name"] == name:
                continue
            labels = other["metadata"].get("labels") or {}
            if any(match_labels(selector, labels) for selector in selectors):
                for rule in other.get("rules") or ():
                    if rule not in rules:
                        rules.append(dict(rule))
        return rules


# -------------------------------------------------------------------------------------- validation

def _go_strings(values: Iterable[Any]) -> str:
    return "[]string{" + ", ".join(_q(str(v)) for v in values) + "}"


def _go_role_ref(ref: Mapping[str, Any]) -> str:
    return (f'rbac.RoleRef{{APIGroup:{_q(str(ref.get("apiGroup", "")))}, Kind:{_q(str(ref.get("kind", "")))}, '
            f'Name:{_q(str(ref.get("name", "")))}}}')


def default_rbac(rt: ResourceType, obj: Obj) -> None:
    """``pkg/apis/rbac/v1/defaults.go``: roleRef.apiGroup, and the apiGroup of User and Group subjects."""
    if rt.key in (ROLEBINDINGS.key, CLUSTERROLEBINDINGS.key):
        ref = obj.get("roleRef")
        if isinstance(ref, dict) and not ref.get("apiGroup"):
            ref["apiGroup"] = RBAC_GROUP
        for subject in obj.get("subjects") or ():
            if isinstance(subject, dict) and not subject.get("apiGroup") and subject.get("kind") in ("User", "Group"):
                subject["apiGroup"] = RBAC_GROUP


def validate_rbac(rt: ResourceType, obj: Obj, old: Obj | None) -> list[FieldError]:
    """``pkg/apis/rbac/validation/validation.go``."""
    errors: list[FieldError] = []
    if rt.key in (ROLES.key, CLUSTERROLES.key):
        for index, rule in enumerate(obj.get("rules") or ()):
            errors += _validate_rule(f"rules[{index}]", rule, rt.namespaced)
    elif rt.key in (ROLEBINDINGS.key, CLUSTERROLEBINDINGS.key):
        errors += _validate_binding(rt, obj, old)
    return errors


def _validate_rule(path: str, rule: Mapping[str, Any], namespaced: bool) -> list[FieldError]:
    errors = []
    if not rule.get("verbs"):
        errors.append(FieldError(f"{path}.verbs", "FieldValueRequired",
                                 "Required value: verbs must contain at least one value"))
    urls = rule.get("nonResourceURLs") or []
    if urls:
        if namespaced:
            errors.append(FieldError(f"{path}.nonResourceURLs", "FieldValueInvalid",
                                     f"Invalid value: {_go_strings(urls)}: namespaced rules cannot apply to "
                                     "non-resource URLs"))
        if rule.get("apiGroups") or rule.get("resources"):
            errors.append(FieldError(f"{path}.nonResourceURLs", "FieldValueInvalid",
                                     f"Invalid value: {_go_strings(urls)}: rules cannot apply to both regular "
                                     "resources and non-resource URLs"))
        return errors
    if not rule.get("apiGroups"):
        errors.append(FieldError(f"{path}.apiGroups", "FieldValueRequired",
                                 "Required value: resource rules must supply at least one api group"))
    if not rule.get("resources"):
        errors.append(FieldError(f"{path}.resources", "FieldValueRequired",
                                 "Required value: resource rules must supply at least one resource"))
    return errors


def _not_supported(path: str, value: Any, supported: Sequence[str]) -> FieldError:
    listing = ", ".join(_q(item) for item in supported)
    detail = f"Unsupported value: {_q(str(value))}: supported values: {listing}"
    return FieldError(path, "FieldValueNotSupported", detail)


def _validate_binding(rt: ResourceType, obj: Obj, old: Obj | None) -> list[FieldError]:
    errors: list[FieldError] = []
    ref = obj.get("roleRef") if isinstance(obj.get("roleRef"), dict) else {}
    assert isinstance(ref, dict)
    kinds = ("Role", "ClusterRole") if rt.namespaced else ("ClusterRole",)
    if ref.get("apiGroup") != RBAC_GROUP:
        errors.append(_not_supported("roleRef.apiGroup", ref.get("apiGroup", ""), [RBAC_GROUP]))
    if ref.get("kind") not in kinds:
        errors.append(_not_supported("roleRef.kind", ref.get("kind", ""), kinds))
    if not ref.get("name"):
        errors.append(FieldError("roleRef.name", "FieldValueRequired", "Required value"))
    for index, subject in enumerate(obj.get("subjects") or ()):
        path = f"subjects[{index}]"
        if not subject.get("name"):
            errors.append(FieldError(f"{path}.name", "FieldValueRequired", "Required value"))
        kind = subject.get("kind")
        if kind == "ServiceAccount":
            if subject.get("apiGroup"):
                errors.append(_not_supported(f"{path}.apiGroup", subject["apiGroup"], [""]))
            if not rt.namespaced and not subject.get("namespace"):
                errors.append(FieldError(f"{path}.namespace", "FieldValueRequired", "Required value"))
        elif kind in ("User", "Group"):
            if subject.get("apiGroup") != RBAC_GROUP:
                errors.append(_not_supported(f"{path}.apiGroup", subject.get("apiGroup", ""), [RBAC_GROUP]))
        else:
            errors.append(_not_supported(f"{path}.kind", kind or "", ["ServiceAccount", "User", "Group"]))
    if old is not None and old.get("roleRef") != obj.get("roleRef"):
        errors.append(FieldError("roleRef", "FieldValueInvalid",
                                 f"Invalid value: {_go_role_ref(ref)}: cannot change roleRef"))
    return errors


# -------------------------------------------------------------------------------- bootstrap policy

_BOOTSTRAP_LABELS = {"kubernetes.io/bootstrapping": "rbac-defaults"}
_AUTOUPDATE = {"rbac.authorization.kubernetes.io/autoupdate": "true"}
_READ = ["get", "list", "watch"]
_WRITE = ["create", "delete", "deletecollection", "patch", "update"]


def _rule(groups: list[str], resources: list[str], verbs: list[str]) -> Obj:
    return {"apiGroups": groups, "resources": resources, "verbs": verbs}


def _cluster_role(name: str, rules: list[Obj], labels: Mapping[str, str] | None = None,
                  aggregate: Sequence[str] = ()) -> Obj:
    role: Obj = {"apiVersion": f"{RBAC_GROUP}/v1", "kind": "ClusterRole",
                 "metadata": {"name": name, "labels": {**_BOOTSTRAP_LABELS, **(labels or {})},
                              "annotations": dict(_AUTOUPDATE)},
                 "rules": rules}
    if aggregate:
        role["aggregationRule"] = {"clusterRoleSelectors": [
            {"matchLabels": {f"rbac.authorization.k8s.io/aggregate-to-{target}": "true"}} for target in aggregate]}
    return role


def _cluster_role_binding(name: str, role: str, *groups: str) -> Obj:
    return {"apiVersion": f"{RBAC_GROUP}/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": name, "labels": dict(_BOOTSTRAP_LABELS), "annotations": dict(_AUTOUPDATE)},
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": RBAC_GROUP, "kind": "Group", "name": group} for group in groups]}


def _aggregate_label(target: str) -> dict[str, str]:
    return {f"rbac.authorization.k8s.io/aggregate-to-{target}": "true"}


def bootstrap_policy() -> tuple[list[Obj], list[Obj]]:
    """The ClusterRoles and ClusterRoleBindings every cluster starts with (``bootstrappolicy/policy.go``),
    limited to the resources this emulator serves."""
    discovery_urls = ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*",
                      "/readyz", "/version", "/version/"]
    roles = [
        _cluster_role("cluster-admin", [_rule(["*"], ["*"], ["*"]), {"nonResourceURLs": ["*"], "verbs": ["*"]}]),
        _cluster_role("system:discovery", [{"nonResourceURLs": discovery_urls, "verbs": ["get"]}]),
        _cluster_role("system:public-info-viewer", [{"nonResourceURLs": ["/healthz", "/livez", "/readyz",
                                                                         "/version", "/version/"], "verbs": ["get"]}]),
        _cluster_role("system:basic-user", [
            _rule(["authorization.k8s.io"], ["selfsubjectaccessreviews", "selfsubjectrulesreviews"], ["create"]),
            _rule(["authentication.k8s.io"], ["selfsubjectreviews"], ["create"])]),
        _cluster_role("admin", [], aggregate=["admin"]),
        _cluster_role("edit", [], _aggregate_label("admin"), aggregate=["edit"]),
        _cluster_role("view", [], _aggregate_label("edit"), aggregate=["view"]),
        _cluster_role("system:aggregate-to-admin", [
            _rule([RBAC_GROUP], ["rolebindings", "roles"], [*_WRITE, *_READ]),
            _rule(["authorization.k8s.io"], ["localsubjectaccessreviews"], ["create"])], _aggregate_label("admin")),
        _cluster_role("system:aggregate-to-edit", [
            _rule([""], ["configmaps", "secrets", "serviceaccounts"], [*_WRITE, *_READ]),
            _rule([""], ["serviceaccounts"], ["impersonate"])], _aggregate_label("edit")),
        _cluster_role("system:aggregate-to-view", [
            _rule([""], ["configmaps", "events", "serviceaccounts"], _READ),
            _rule([""], ["namespaces", "namespaces/status"], _READ),
            _rule(["events.k8s.io"], ["events"], _READ)], _aggregate_label("view")),
    ]
    bindings = [
        _cluster_role_binding("cluster-admin", "cluster-admin", MASTERS),
        _cluster_role_binding("system:discovery", "system:discovery", AUTHENTICATED),
        _cluster_role_binding("system:basic-user", "system:basic-user", AUTHENTICATED),
        _cluster_role_binding("system:public-info-viewer", "system:public-info-viewer", AUTHENTICATED,
                              "system:unauthenticated"),
    ]
    return roles, bindings
