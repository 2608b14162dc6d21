"""Kubernetes operator for OVHcloud Object Storage users and their S3 credentials."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ovh-s3-operator")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"
