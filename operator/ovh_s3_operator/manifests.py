"""The CustomResourceDefinitions the package ships (``crds/`` of the source tree, their only source)."""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

DISTRIBUTION = "ovh-s3-operator"


def installed_folder(distribution_name: str, packaged: str, in_tree: str) -> Path:
    """A folder of data a distribution ships: from its source tree when installed editable (so that
    edits show at once), else from where the wheel put it (``packaged``, relative to site-packages)."""
    dist = distribution(distribution_name)
    direct_url = json.loads(dist.read_text("direct_url.json") or "{}")
    if direct_url.get("dir_info", {}).get("editable"):
        return Path(unquote(urlsplit(direct_url["url"]).path)) / in_tree
    return Path(str(dist.locate_file(packaged)))


def crd_documents() -> list[dict[str, Any]]:
    """Every CRD of the operator, parsed."""
    try:
        folder = installed_folder(DISTRIBUTION, "ovh_s3_operator/crds", "crds")
    except PackageNotFoundError:  # running from a source tree that was never installed
        folder = Path(__file__).resolve().parents[2] / "crds"
    return [yaml.safe_load(path.read_text()) for path in sorted(folder.glob("*.yaml"))]
