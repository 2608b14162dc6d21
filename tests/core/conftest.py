"""The fast tier: the operator's controller in this process against the emulator and the OVH model.

No sockets and no subprocess (see :mod:`ovh_s3_operator_sandbox.harness`): each test takes well
under a second. OVH timers are short (activation 50 ms, deletion 20 ms) and so are the operator's
delays; tests poll for what they expect instead of sleeping.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest

from ovh_s3_operator_sandbox.harness import InProcessOperator

from ..support import credential_keys, live_users, owner_uid, redacted, secrets_of_every_project


class Operator(InProcessOperator):
    """The harness with the assertions the tests share."""

    def ovh_users(self, uid: str | None = None) -> list[dict[str, Any]]:
        """OVH users (all, or those carrying a resource's marker), excluding ones being deleted."""
        return live_users(self.ovh.project.users(), uid)

    def secret_values(self, name: str, namespace: str | None = None) -> dict[str, str] | None:
        """The Secret's values, those holding an S3 secret redacted."""
        return redacted(super().secret_values(name, namespace), secrets_of_every_project(self.ovh))

    def calls(self, method: str, pattern: str) -> list[Any]:
        return [c for c in self.ovh.calls() if c.method == method and re.search(pattern, c.path)]

    async def assert_consistent(self, names: Iterable[str | tuple[str, str]], timeout: float = 5.0) -> None:
        """Each named resource (a name, or a namespace and a name) becomes Ready with exactly one OVH user
        holding one key, which its Secret holds, and no OVH user belongs to anything else."""
        items = [item if isinstance(item, tuple) else (None, item) for item in names]
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                self._check_consistent(items)
                return
            except AssertionError:
                if asyncio.get_running_loop().time() > deadline:
                    raise
            await asyncio.sleep(0.01)

    def _check_consistent(self, items: list[tuple[str | None, str]]) -> None:
        live = set()
        for namespace, name in items:
            obj = self.get(name, namespace)
            assert obj is not None, name
            condition = self.ready(obj)
            assert condition is not None and condition["status"] == "True", (name, condition)
            assert condition["observedGeneration"] == obj["metadata"]["generation"], name
            live.add(obj["metadata"]["uid"])
            users = self.ovh_users(obj["metadata"]["uid"])
            assert len(users) == 1, (name, users)
            [user] = users
            assert user["status"] == "ok"
            assert len(user["credentials"]) == 1, (name, user["credentials"])
            [credential] = user["credentials"]
            values = self.secret_values(obj["status"]["secretName"], namespace)
            assert values is not None
            access_key, secret_key = credential_keys(obj)
            assert (values[access_key], values[secret_key]) == (credential["access"], credential["secret"]), name
            assert (obj["status"]["userId"], obj["status"]["accessKeyId"]) == (user["id"], credential["access"])
        assert sorted(owner_uid(u) or "(no marker)" for u in self.ovh_users()) == sorted(live)


@pytest.fixture
async def op(request: pytest.FixtureRequest) -> AsyncIterator[Operator]:
    """A started operator; ``@pytest.mark.parametrize("op", [{settings}], indirect=True)`` overrides settings."""
    overrides = getattr(request, "param", {})
    async with Operator(**overrides) as operator:
        yield operator
