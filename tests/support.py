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
