"""The small typed interfaces the reconcile talks to.

:class:`OVH` is implemented by :class:`.ovh_api.OVHClient` (python-ovh, retries, the rate limiter),
:class:`Kube` and :class:`Events` by :mod:`.kube_api` (the official kubernetes client). The tests
run the same implementations against in-process transports into the sandbox's models of OVH and
Kubernetes, so a fake never stands in for the code under test.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

BeforeSend = Callable[[], Awaitable[None]]
"""Runs right before a request leaves (after any pause and the rate limiter)."""


@dataclass(frozen=True)
class OVHUser:
    id: int
    username: str
    status: str
    description: str
    roles: tuple[str, ...]
    creation_date: str | None = None
    openstack_id: str | None = None


@dataclass(frozen=True)
class S3Credential:
    access: str
    secret: str = field(repr=False)


class OVH(Protocol):
    """One OVH Public Cloud project, as the operator uses it."""

    async def list_roles(self) -> frozenset[str]: ...
    async def list_users(self, *, max_age: float = 0.0) -> list[OVHUser]: ...
    async def get_user(self, user_id: int, *, max_age: float = 0.0) -> OVHUser | None: ...
    async def create_user(self, description: str, roles: tuple[str, ...], *,
                          before_send: BeforeSend | None = None) -> OVHUser: ...
    async def set_roles(self, user_id: int, roles: tuple[str, ...]) -> None: ...
    async def delete_user(self, user_id: int) -> bool: ...
    async def list_s3_credentials(self, user_id: int) -> list[str]: ...
    async def create_s3_credentials(self, user_id: int) -> S3Credential: ...
    async def get_s3_secret(self, user_id: int, access: str) -> str: ...
    async def delete_s3_credentials(self, user_id: int, access: str) -> None: ...
    async def get_policy(self, user_id: int) -> dict[str, Any] | None: ...
    async def apply_policy(self, user_id: int, policy: dict[str, Any]) -> None: ...


class Kube(Protocol):
    """The Kubernetes objects the reconcile reads and writes itself."""

    async def read_resource(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    async def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> dict[str, Any]: ...
    async def set_finalizers(self, namespace: str, name: str, finalizers: list[str],
                             resource_version: str) -> dict[str, Any]: ...
    async def read_secret_metadata(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    async def read_secret(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    async def create_secret(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]: ...
    async def patch_secret(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]: ...
    async def delete_secret(self, namespace: str, name: str, uid: str) -> None: ...


class Events(Protocol):
    """Kubernetes events about a resource; posting never blocks nor fails the caller."""

    def post(self, regarding: Mapping[str, Any], reason: str, message: str, *, warning: bool = False) -> None: ...
