"""What every test tier shares: secrets that never print, and the OVH users that belong to a resource."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

_MARKER = re.compile(r"\[osu:[^/]+/([^\]]+)\]")


class Redacted(str):
    """A secret that compares like the string but never shows in assertion output."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'<redacted>'"


def redacted(values: dict[str, str] | None, secrets: Iterable[str]) -> dict[str, str] | None:
    """A Secret's values, each one that contains one of ``secrets`` redacted (under any key, in any template)."""
    if values is None:
        return None
    secrets = [secret for secret in secrets if secret]
    return {key: Redacted(value) if any(secret in value for secret in secrets) else value
            for key, value in values.items()}


def credential_keys(obj: dict[str, Any]) -> tuple[str, str]:
    """The keys of a resource's Secret that hold the access key and the secret (spec.secret.keys)."""
    keys = ((obj.get("spec") or {}).get("secret") or {}).get("keys") or {}
    return keys.get("accessKeyId", "AWS_ACCESS_KEY_ID"), keys.get("secretAccessKey", "AWS_SECRET_ACCESS_KEY")


def issued_secrets(snapshots: Iterable[dict[str, Any]]) -> list[str]:
    """Every S3 secret the OVH sandbox's users hold."""
    return [credential["secret"] for user in snapshots for credential in user["credentials"]]


def secrets_of_every_project(ovh: Any) -> list[str]:
    """Every S3 secret the users of every project of an OVH sandbox hold."""
    return issued_secrets(user for project in ovh.projects.values() for user in project.users())


def live_users(snapshots: Iterable[dict[str, Any]], uid: str | None = None) -> list[dict[str, Any]]:
    """The OVH sandbox's users not being deleted (all, or those carrying a resource's marker), their
    S3 secrets redacted."""
    users = [u for u in snapshots if u["status"] not in ("deleting", "deleted")]
    for user in users:
        for credential in user["credentials"]:
            credential["secret"] = Redacted(credential["secret"])
    return [u for u in users if uid is None or owner_uid(u) == uid]


def owner_uid(user: dict[str, Any]) -> str | None:
    """The resource uid in a user's marker, None if it has none."""
    match = _MARKER.match(user["description"])
    return match.group(1) if match else None


def worst_case_spec(bucket_prefix: str) -> dict[str, Any]:
    """A valid spec with every list at its maximum length and every string at its maximum size, as the
    CRD allows (buckets named ``<bucket_prefix>…``, for a namespace allowed them and raw policies)."""
    long = "a" * 256
    condition = {operator: {key: [long] * 8 for key in ("s3:prefix", "s3:delimiter")}
                 for operator in ("StringLike", "StringNotLike")}
    statements = [{"Sid": "S" * 60 + f"{i:04d}", "Effect": "Allow", "Action": ["s3:GetObject"] * 11,
                   "Resource": [f"arn:aws:s3:::{bucket_prefix}x/{long[:230]}"] * 8, "Condition": condition}
                  for i in range(16)]
    bucket = bucket_prefix + "b" * (63 - len(bucket_prefix))
    return {"description": "d" * 200, "roles": ["objectstore_operator"], "region": "gra",
            "grants": [{"bucket": bucket, "prefix": "p" * 256, "access": "readwrite"}] * 50,
            "policy": {"Version": "2012-10-17", "Statement": statements}, "secret": {"name": "s" * 253}}
