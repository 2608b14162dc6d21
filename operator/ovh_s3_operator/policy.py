"""Grants → S3 policy, validation of raw policies, and the canonical form used to detect drift.

OVH's S3 policies are AWS-IAM-like documents (``{"Statement": [...]}``) with a fixed set of actions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .errors import InvalidSpec
from .model import Access, Grant

ARN_PREFIX = "arn:aws:s3:::"
SUPPORTED_ACTIONS = frozenset({
    "s3:AbortMultipartUpload", "s3:CreateBucket", "s3:DeleteBucket", "s3:DeleteObject",
    "s3:GetBucketLocation", "s3:GetObject", "s3:ListBucket", "s3:ListBucketMultipartUploads",
    "s3:ListMultipartUploadParts", "s3:PutObject", "s3:*",
})
STATEMENT_KEYS = frozenset({"Sid", "Effect", "Action", "Resource", "Condition"})
_SID = re.compile(r"^[A-Za-z0-9]*$")

BUCKET_READ = ("s3:GetBucketLocation",)
BUCKET_LIST = ("s3:ListBucket", "s3:ListBucketMultipartUploads")
OBJECT_READ = ("s3:GetObject", "s3:ListMultipartUploadParts")
OBJECT_WRITE = ("s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload")

Policy = dict[str, Any]


def _statement(sid: str, actions: Iterable[str], resources: Iterable[str], **extra: Any) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": list(actions), "Resource": list(resources), **extra}


def _grant_statements(index: int, grant: Grant) -> list[dict[str, Any]]:
    bucket = ARN_PREFIX + grant.bucket
    sid = f"Grant{index}"
    if grant.access is Access.ADMIN:
        if grant.prefix:
            raise InvalidSpec(
                f"spec.grants[{index}]: admin access applies to the whole bucket; remove prefix or use readwrite"
            )
        return [_statement(f"{sid}Admin", ["s3:*"], [bucket, f"{bucket}/*"])]
    object_actions = OBJECT_READ + (OBJECT_WRITE if grant.access is Access.READWRITE else ())
    if not grant.prefix:
        actions = BUCKET_READ + BUCKET_LIST + object_actions
        return [_statement(sid, actions, [bucket, f"{bucket}/*"])]
    # A prefix limits listing through a condition; GetBucketLocation has no prefix, so it stands alone.
    return [
        _statement(f"{sid}Bucket", BUCKET_READ, [bucket]),
        _statement(f"{sid}List", BUCKET_LIST, [bucket],
                   Condition={"StringLike": {"s3:prefix": [f"{grant.prefix}*"]}}),
        _statement(f"{sid}Objects", object_actions, [f"{bucket}/{grant.prefix}*"]),
    ]


def _as_list(value: Any, where: str, what: str) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(i, str) and i for i in items):
        raise InvalidSpec(f"{where}.{what} must be a non-empty string or list of strings")
    return list(items)


def _validate_statement(index: int, statement: Any) -> dict[str, Any]:
    where = f"spec.policy.Statement[{index}]"
    if not isinstance(statement, Mapping):
        raise InvalidSpec(f"{where} must be an object")
    unknown = sorted(set(statement) - STATEMENT_KEYS)
    if unknown:
        raise InvalidSpec(f"{where}: unsupported key(s) {', '.join(unknown)}; use {', '.join(sorted(STATEMENT_KEYS))}")
    if statement.get("Effect") not in ("Allow", "Deny"):
        raise InvalidSpec(f"{where}.Effect must be Allow or Deny")
    actions = _as_list(statement.get("Action"), where, "Action")
    for action in actions:
        if action not in SUPPORTED_ACTIONS:
            raise InvalidSpec(
                f"{where}.Action: unsupported S3 action {action!r}; OVH supports {', '.join(sorted(SUPPORTED_ACTIONS))}"
            )
    resources = _as_list(statement.get("Resource"), where, "Resource")
    for resource in resources:
        if resource != "*" and (not resource.startswith(ARN_PREFIX) or len(resource) == len(ARN_PREFIX)):
            raise InvalidSpec(
                f"{where}.Resource: {resource!r} must look like arn:aws:s3:::bucket or arn:aws:s3:::bucket/key* "
                "(or be *)"
            )
    sid = statement.get("Sid")
    if sid is not None and not (isinstance(sid, str) and _SID.match(sid)):
        raise InvalidSpec(f"{where}.Sid must contain only letters and digits")
    condition = statement.get("Condition")
    if condition is not None and not isinstance(condition, Mapping):
        raise InvalidSpec(f"{where}.Condition must be an object")
    return dict(statement, Action=actions, Resource=resources)


def _raw_statements(raw: Mapping[str, Any]) -> list[dict[str, Any]]:
    unknown = sorted(set(raw) - {"Version", "Statement"})
    if unknown:
        raise InvalidSpec(f"spec.policy: unsupported key(s) {', '.join(unknown)}; a policy has Version and Statement")
    if "Version" in raw and not isinstance(raw["Version"], str):
        raise InvalidSpec("spec.policy.Version must be a string such as 2012-10-17")
    statements = raw.get("Statement")
    if not isinstance(statements, list):
        raise InvalidSpec("spec.policy.Statement must be a list of statements")
    return [_validate_statement(i, s) for i, s in enumerate(statements)]


def compile_policy(grants: Sequence[Grant], raw: Mapping[str, Any] | None) -> Policy:
    """The S3 policy for a resource: compiled grants first, then the raw statements.

    No grants and no raw policy give an empty statement list, i.e. no access at all.
    """
    statements = [s for i, grant in enumerate(grants) for s in _grant_statements(i, grant)]
    policy: Policy = {}
    if raw is not None:
        statements += _raw_statements(raw)
        if "Version" in raw:
            policy["Version"] = raw["Version"]
    sids = [s["Sid"] for s in statements if s.get("Sid")]
    duplicates = sorted({sid for sid in sids if sids.count(sid) > 1})
    if duplicates:
        raise InvalidSpec(f"spec.policy: duplicate Sid {', '.join(duplicates)}; Sids Grant<N>… are used by grants")
    policy["Statement"] = statements
    return policy


def canonical(policy: Mapping[str, Any] | None) -> str:
    """A stable text form: equal for policies that differ only in key order or string-vs-list."""
    if policy is None:
        return ""

    def normalize(statement: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(statement)
        for key in ("Action", "Resource"):
            if isinstance(out.get(key), str):
                out[key] = [out[key]]
        return out

    document = {"Statement": [normalize(s) for s in policy.get("Statement") or []]}
    if policy.get("Version"):
        document["Version"] = policy["Version"]
    return json.dumps(document, sort_keys=True, separators=(",", ":"))
