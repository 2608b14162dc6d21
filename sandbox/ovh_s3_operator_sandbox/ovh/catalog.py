"""What the OVH API sandbox knows about the outside world: project roles and the S3 policy grammar."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

# cloud.user.RoleEnum of OVH's published schema (tests/data/ovh_cloud_schema.json).
DEFAULT_ROLES: tuple[str, ...] = (
    "administrator",
    "ai_training_operator",
    "ai_training_read",
    "authentication",
    "backup_operator",
    "compute_operator",
    "image_operator",
    "infrastructure_supervisor",
    "key-manager_operator",
    "key-manager_read",
    "load-balancer_operator",
    "network_operator",
    "network_security_operator",
    "objectstore_operator",
    "quantum_operator",
    "quantum_reader",
    "share_operator",
    "volume_operator",
)

S3_ACTIONS = frozenset(
    {
        "s3:AbortMultipartUpload",
        "s3:CreateBucket",
        "s3:DeleteBucket",
        "s3:DeleteObject",
        "s3:GetBucketLocation",
        "s3:GetObject",
        "s3:ListBucket",
        "s3:ListBucketMultipartUploads",
        "s3:ListMultipartUploadParts",
        "s3:PutObject",
        "s3:*",
    }
)
S3_RESOURCE_PREFIX = "arn:aws:s3:::"

_POLICY_FIELDS = frozenset({"Version", "Id", "Statement"})
_STATEMENT_FIELDS = frozenset({"Sid", "Effect", "Action", "Resource", "Condition"})


def role(name: str) -> dict[str, Any]:
    """The role object OVH shows for ``name`` (``cloud.role.Role``), with a stable id.

    ``<service>_<level>`` roles grant ``<service>:<level>``; one-word roles grant ``<name>:*``.
    """
    service, _, level = name.rpartition("_")
    return {
        "id": uuid.uuid5(uuid.NAMESPACE_URL, f"ovh-role:{name}").hex,
        "name": name,
        "description": name.replace("_", " ").replace("-", " ").capitalize(),
        "permissions": [f"{service}:{level}" if service else f"{name}:*"],
    }


def roles_document(names: Sequence[str]) -> dict[str, Any]:
    """``GET /cloud/project/{sn}/role``: the roles, and per service its permissions and who grants it."""
    roles = [role(name) for name in names]
    services: dict[str, dict[str, list[str]]] = {}
    for item in roles:
        for permission in item["permissions"]:
            service = permission.partition(":")[0]
            services.setdefault(service, {}).setdefault(permission, []).append(item["id"])
    return {
        "roles": roles,
        "services": [
            {"name": name, "permissions": [{"label": label, "roles": ids} for label, ids in perms.items()]}
            for name, perms in services.items()
        ],
    }


CONDITION_OPERATORS = frozenset({
    "StringEquals", "StringNotEquals", "StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase", "StringLike",
    "StringNotLike", "IpAddress", "NotIpAddress",
})


def check_policy(text: str, *, conditions: bool = True) -> None:
    """Validate an S3 policy document given as a JSON string; ``ValueError`` names the first problem.
    ``conditions=False`` refuses every ``Condition``."""
    try:
        document = json.loads(text)
    except ValueError as error:
        raise ValueError(f"policy is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise ValueError("policy must be a JSON object")
    _check_fields(document, _POLICY_FIELDS, "policy")
    statements = document.get("Statement")
    if not isinstance(statements, list):
        raise ValueError('policy must have a "Statement" list')
    for index, statement in enumerate(statements):
        _check_statement(statement, f"statement {index}", conditions)


def _check_statement(statement: object, where: str, conditions: bool) -> None:
    if not isinstance(statement, dict):
        raise ValueError(f"{where}: must be an object")
    _check_fields(statement, _STATEMENT_FIELDS, where)
    if statement.get("Effect") not in ("Allow", "Deny"):
        raise ValueError(f'{where}: "Effect" must be "Allow" or "Deny"')
    for action in _strings(statement, "Action", where):
        if action not in S3_ACTIONS:
            raise ValueError(f'{where}: unsupported action "{action}"')
    for resource in _strings(statement, "Resource", where):
        if resource != "*" and (not resource.startswith(S3_RESOURCE_PREFIX) or resource == S3_RESOURCE_PREFIX):
            raise ValueError(f'{where}: unsupported resource "{resource}" (expected {S3_RESOURCE_PREFIX}… or *)')
    if not isinstance(statement.get("Sid", ""), str):
        raise ValueError(f'{where}: "Sid" must be a string')
    condition = statement.get("Condition", {})
    if not isinstance(condition, dict):
        raise ValueError(f'{where}: "Condition" must be an object')
    for operator in condition:
        if not conditions or operator not in CONDITION_OPERATORS:
            raise ValueError(f'{where}: unsupported condition operator "{operator}"')


def _check_fields(item: dict[str, Any], allowed: frozenset[str], where: str) -> None:
    unsupported = sorted(set(item) - allowed)
    if unsupported:
        raise ValueError(f'{where}: unsupported field "{unsupported[0]}"')


def _strings(statement: dict[str, Any], key: str, where: str) -> list[str]:
    value = statement.get(key)
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(v, str) and v for v in values):
        raise ValueError(f'{where}: "{key}" must be a non-empty string or list of strings')
    return values
