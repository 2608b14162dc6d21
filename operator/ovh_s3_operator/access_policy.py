"""Who may ask for what: OVHObjectStorageAccessPolicies, and the check of a spec against them.

The platform team writes cluster-scoped ``OVHObjectStorageAccessPolicy`` objects. Each selects
namespaces by label and says which buckets (globs, each with the most access it may get and
optionally the object-key prefixes allowed), which OVH roles and which regions they may use,
whether a raw S3 policy is allowed at all, whether existing OVH users may be adopted, whether an
OVH user may outlive its resource (``deletionPolicy: Retain``), and which OVH projects: OVHProjects
by name or glob (``projects``), and the operator's own (``defaultProject``; unset, it follows whether
``projects`` is set, so that policies written before OVHProjects keep working and a policy that
lists projects means only those). A namespace gets the union of every policy that selects it; a
namespace no policy selects gets ``OVH_S3_OPERATOR_DEFAULT_ACCESS``: ``deny`` (nothing) or ``allow``
(any bucket and region, a raw policy, but only the ``objectstore_operator`` role, only the operator's
own project; no adoption, no Retain).

A resource in a project its namespace may not use is allowed nothing at all.

The check is conservative: a wildcard in what a tenant asks for is allowed only when it provably
stays inside an allowed pattern (decided on its literal beginning), so an allowance can only turn
out narrower than it reads, never wider. ``Deny`` statements always pass: they only take away.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .model import OBJECTSTORE_OPERATOR, Access, DeletionPolicy, Grant, Spec
from .policy import ARN_PREFIX

POLICY_PLURAL = "ovhobjectstorageaccesspolicies"
LEVELS = {Access.READ: 1, Access.READWRITE: 2, Access.ADMIN: 3}
ACTION_LEVELS = {
    "s3:GetObject": Access.READ, "s3:ListBucket": Access.READ, "s3:ListMultipartUploadParts": Access.READ,
    "s3:ListBucketMultipartUploads": Access.READ, "s3:GetBucketLocation": Access.READ,
    "s3:PutObject": Access.READWRITE, "s3:DeleteObject": Access.READWRITE, "s3:AbortMultipartUpload": Access.READWRITE,
    "s3:CreateBucket": Access.ADMIN, "s3:DeleteBucket": Access.ADMIN, "s3:*": Access.ADMIN,
}
BUCKET_LEVEL_READS = frozenset({"s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"})
"""What a namespace limited to some key prefixes may do on the bucket itself (listing under a
``s3:prefix`` condition)."""


# --- globs ---------------------------------------------------------------------------------------


def _glob(pattern: str) -> re.Pattern[str]:
    """``*`` matches any characters, ``?`` one; nothing else is special (S3 keys may hold ``[``)."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern), re.S)


def _literal_head(pattern: str) -> str:
    return re.split(r"[*?]", pattern, maxsplit=1)[0]


def glob_covers(allowed: str, wanted: str) -> bool:
    """Whether every string matching the glob ``wanted`` matches the glob ``allowed`` (conservatively:
    False when unsure)."""
    if allowed == "*" or allowed == wanted:
        return True
    if not re.search(r"[*?]", wanted):
        return _glob(allowed).fullmatch(wanted) is not None
    head = allowed[:-1]
    return allowed.endswith("*") and not re.search(r"[*?]", head) and _literal_head(wanted).startswith(head)


# --- policies and the allowance of a namespace --------------------------------------------------


@dataclass(frozen=True)
class BucketRule:
    name: str
    max_access: Access
    prefixes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Allowance:
    """What one namespace may ask for: the union of the policies that select it."""

    policies: tuple[str, ...]
    buckets: tuple[BucketRule, ...] = ()
    roles: frozenset[str] = frozenset()
    regions: tuple[str, ...] = ()
    raw_policy: bool = False
    allow_adoption: bool = False
    allow_retain: bool = False
    projects: tuple[str, ...] = ()
    """OVHProjects (names or globs) the namespace may name in spec.projectRef."""
    default_project: bool = True
    """Whether the namespace may use the operator's own project (no spec.projectRef)."""
    default: str | None = None  # the operator's default, when no policy selects the namespace

    def allows_project(self, name: str) -> bool:
        """``name``: an OVHProject, or "" for the operator's own project."""
        if not name:
            return self.default_project
        return any(_glob(pattern).fullmatch(name) for pattern in self.projects)

    def source(self, namespace: str) -> str:
        """Where the allowance comes from, and what to do about it (a sentence)."""
        if self.policies:
            return (f"Access policies selecting namespace {namespace}: {', '.join(self.policies)} "
                    "(kubectl get osap); change the spec, or ask the platform team to allow more.")
        return (f"No OVHObjectStorageAccessPolicy selects namespace {namespace} and the operator's default access "
                f"is {self.default}; ask the platform team for an access policy.")


DENY_ALL = Allowance(policies=(), default="deny")
ALLOW_ANY_BUCKET = Allowance(policies=(), buckets=(BucketRule("*", Access.ADMIN),),
                             roles=frozenset({OBJECTSTORE_OPERATOR}), regions=("*",), raw_policy=True, default="allow")


@dataclass(frozen=True)
class AccessPolicy:
    name: str
    selector: Mapping[str, Any]
    buckets: tuple[BucketRule, ...]
    roles: frozenset[str]
    regions: tuple[str, ...]
    raw_policy: bool
    allow_adoption: bool = False
    allow_retain: bool = False
    projects: tuple[str, ...] = ()
    default_project: bool = True

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> AccessPolicy:
        spec = body.get("spec") or {}
        buckets = tuple(
            BucketRule(str(b["name"]), Access(b["maxAccess"]), tuple(str(p) for p in b.get("prefixes") or ()))
            for b in spec.get("buckets") or () if isinstance(b, Mapping) and b.get("maxAccess") in LEVELS)
        selector = spec.get("namespaceSelector")
        return cls(name=str(body["metadata"]["name"]),
                   selector=selector if isinstance(selector, Mapping) else {"matchLabels": {"-": "-"}},
                   buckets=buckets, roles=frozenset(str(r) for r in spec.get("roles") or ()),
                   regions=tuple(str(r) for r in spec.get("regions") or ()),
                   raw_policy=spec.get("allowRawPolicy") is True, allow_adoption=spec.get("allowAdoption") is True,
                   allow_retain=spec.get("allowRetain") is True,
                   projects=tuple(str(p) for p in spec.get("projects") or ()),
                   default_project=spec["defaultProject"] is True if isinstance(spec.get("defaultProject"), bool)
                   else spec.get("projects") is None)

    def selects(self, labels: Mapping[str, str]) -> bool:
        return selector_matches(self.selector, labels)


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """metav1.LabelSelector semantics: matchLabels and every matchExpression must hold; {} selects all."""
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
        if operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return False  # unknown operators select nothing (stricter than failing open)
    return True


class AccessIndex:
    """The access policies and the labels of namespaces, as last seen; answers what a namespace may ask for."""

    def __init__(self, default: str = "deny") -> None:
        self.default = default
        self._policies: dict[str, AccessPolicy] = {}
        self._labels: dict[str, dict[str, str]] = {}

    def replace(self, policies: Iterable[Mapping[str, Any]], namespaces: Iterable[Mapping[str, Any]]) -> None:
        """Everything at once, from a fresh listing."""
        self._policies = {p.name: p for p in map(AccessPolicy.from_body, policies)}
        self._labels = {str(ns["metadata"]["name"]): dict(ns["metadata"].get("labels") or {}) for ns in namespaces}

    def set_policy(self, body: Mapping[str, Any], deleted: bool = False) -> None:
        name = str(body["metadata"]["name"])
        if deleted:
            self._policies.pop(name, None)
        else:
            self._policies[name] = AccessPolicy.from_body(body)

    def set_namespace(self, body: Mapping[str, Any], deleted: bool = False) -> None:
        name = str(body["metadata"]["name"])
        if deleted:
            self._labels.pop(name, None)
        else:
            self._labels[name] = dict(body["metadata"].get("labels") or {})

    def allowance(self, namespace: str) -> Allowance:
        labels = self._labels.get(namespace, {"kubernetes.io/metadata.name": namespace})
        selecting = sorted((p for p in self._policies.values() if p.selects(labels)), key=lambda p: p.name)
        if not selecting:
            return ALLOW_ANY_BUCKET if self.default == "allow" else DENY_ALL
        return Allowance(
            policies=tuple(p.name for p in selecting),
            buckets=tuple(rule for p in selecting for rule in p.buckets),
            roles=frozenset().union(*(p.roles for p in selecting)),
            regions=tuple(region for p in selecting for region in p.regions),
            raw_policy=any(p.raw_policy for p in selecting),
            allow_adoption=any(p.allow_adoption for p in selecting),
            allow_retain=any(p.allow_retain for p in selecting),
            projects=tuple(project for p in selecting for project in p.projects),
            default_project=any(p.default_project for p in selecting),
        )


# --- the check -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """What of a spec its namespace may have: the allowed parts, and what is not allowed."""

    grants: tuple[Grant, ...]
    policy: dict[str, Any] | None
    roles: tuple[str, ...]
    problems: tuple[str, ...] = field(default=())

    @property
    def allowed(self) -> bool:
        return not self.problems


def _rule_allows_grant(rule: BucketRule, grant: Grant) -> bool:
    if not glob_covers(rule.name, grant.bucket) or LEVELS[grant.access] > LEVELS[rule.max_access]:
        return False
    if not rule.prefixes:
        return True
    return grant.access is not Access.ADMIN and grant.prefix is not None and any(
        glob_covers(prefix, grant.prefix + "*") for prefix in rule.prefixes)


def _prefix_condition(statement: Mapping[str, Any]) -> list[str] | None:
    """The ``s3:prefix`` values a statement's Condition limits listing to, if it does (StringLike or
    StringEquals)."""
    condition = statement.get("Condition")
    if not isinstance(condition, Mapping):
        return None
    for operator in ("StringLike", "StringEquals"):
        values = (condition.get(operator) or {}).get("s3:prefix") if isinstance(condition.get(operator),
                                                                                 Mapping) else None
        if values:
            return [values] if isinstance(values, str) else [str(v) for v in values]
    return None


def _rule_allows_resource(rule: BucketRule, bucket: str, key: str | None, actions: Sequence[str],
                          level: Access, statement: Mapping[str, Any]) -> bool:
    if not glob_covers(rule.name, bucket) or LEVELS[level] > LEVELS[rule.max_access]:
        return False
    if not rule.prefixes:
        return True
    if level is Access.ADMIN:
        return False
    if key is not None:
        return any(glob_covers(prefix, key) for prefix in rule.prefixes)
    listed = _prefix_condition(statement)
    return set(actions) <= BUCKET_LEVEL_READS and (
        set(actions) == {"s3:GetBucketLocation"}
        or (listed is not None and all(any(glob_covers(p, value) for p in rule.prefixes) for value in listed)))


def _split(resource: str) -> tuple[str, str | None] | None:
    if resource == "*":
        return "*", None
    if not resource.startswith(ARN_PREFIX):
        return None
    bucket, slash, key = resource.removeprefix(ARN_PREFIX).partition("/")
    return bucket, key if slash else None


def _statement_problems(index: int, statement: Mapping[str, Any], allowance: Allowance) -> list[str]:
    if statement.get("Effect") == "Deny":
        return []
    actions = statement.get("Action")
    actions = [actions] if isinstance(actions, str) else list(actions or ())
    resources = statement.get("Resource")
    resources = [resources] if isinstance(resources, str) else list(resources or ())
    level = max((ACTION_LEVELS.get(a, Access.ADMIN) for a in actions), key=LEVELS.__getitem__, default=Access.ADMIN)
    problems = []
    for resource in resources:
        split = _split(resource)
        allowed = split is not None and any(
            _rule_allows_resource(rule, split[0], split[1], actions, level, statement) for rule in allowance.buckets)
        if not allowed:
            problems.append(f"spec.policy.Statement[{index}] ({level} on {resource})")
    return problems


def check(spec: Spec, region: str, allowance: Allowance) -> Verdict:
    """Check a spec against the namespace's allowance; the verdict keeps only what is allowed (nothing at
    all in a project the namespace may not use)."""
    project = spec.project_ref.name if spec.project_ref else ""
    if not allowance.allows_project(project):
        what = f"project {project} (spec.projectRef)" if project else \
            "the operator's own project (no spec.projectRef; name an OVHProject the namespace may use)"
        return Verdict((), None if spec.policy is None else {**spec.policy, "Statement": []}, (), (what,))
    problems: list[str] = []
    grants = []
    for index, grant in enumerate(spec.grants):
        if any(_rule_allows_grant(rule, grant) for rule in allowance.buckets):
            grants.append(grant)
        else:
            where = f"{grant.bucket}/{grant.prefix}*" if grant.prefix else grant.bucket
            problems.append(f"spec.grants[{index}] ({grant.access} on {where})")
    policy = None
    if spec.policy is not None:
        statements = spec.policy.get("Statement")
        statements = statements if isinstance(statements, list) else []
        kept = []
        for index, statement in enumerate(statements):
            if not isinstance(statement, Mapping):
                continue
            if statement.get("Effect") != "Deny" and not allowance.raw_policy:
                problems.append(f"spec.policy.Statement[{index}] (no raw S3 policy is allowed)")
                continue
            found = _statement_problems(index, statement, allowance)
            problems += found
            if not found:
                kept.append(statement)
        policy = {**spec.policy, "Statement": kept}
    roles = tuple(role for role in spec.roles if role in allowance.roles)
    problems += [f"role {role}" for role in spec.roles if role not in allowance.roles]
    if not any(_glob(pattern).fullmatch(region) for pattern in allowance.regions):
        problems.append(f"region {region}")
    if spec.deletion_policy is DeletionPolicy.RETAIN and not allowance.allow_retain:
        problems.append("spec.deletionPolicy Retain (keeping the OVH user and its keys after the resource)")
    return Verdict(tuple(grants), policy, roles, tuple(problems))
