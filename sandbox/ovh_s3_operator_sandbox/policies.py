"""Access policies the sandbox and the tests start with."""

from __future__ import annotations

from typing import Any

from .ovh.catalog import DEFAULT_ROLES

SANDBOX_DEFAULT: dict[str, dict[str, Any]] = {
    "sandbox-default": {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "default"}},
        "buckets": [{"name": "*", "maxAccess": "admin"}],
        "roles": ["objectstore_operator"],
        "regions": ["*"],
        "allowRawPolicy": True,
    },
}
"""What ``ovh-s3-operator sandbox`` and the demo create: namespace default may use every bucket."""

ALLOW_EVERYTHING: dict[str, dict[str, Any]] = {
    "everything": {"namespaceSelector": {}, "buckets": [{"name": "*", "maxAccess": "admin"}],
                   "roles": list(DEFAULT_ROLES), "regions": ["*"], "allowRawPolicy": True,
                   "projects": ["*"], "defaultProject": True},
}
"""For tests about something else than access: every namespace may ask for anything."""
