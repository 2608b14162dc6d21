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
