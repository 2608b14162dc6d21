"""The operator and the OVH sandbox against OVH's published API schema.

``tests/data/ovh_cloud_schema.json`` is an excerpt of ``cloud.json`` as vendored by ovh/ovhcloud-cli
(``internal/assets/api-schemas/cloud.json``, the commit is in the file). A full lifecycle runs
in-process while every request the operator sends and every answer the sandbox gives is recorded;
then each request must be a route and method of the schema with a body of its request schema, and
each answer must match the response schema the operator reads.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests
import yaml

from ovh_s3_operator.reconcile import GONE_STATUSES
from ovh_s3_operator_sandbox.ovh.catalog import DEFAULT_ROLES
from ovh_s3_operator_sandbox.ovh.model import USER_STATUSES

from .conftest import Operator

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "tests" / "data" / "ovh_cloud_schema.json").read_text())


def route_of(path: str) -> str:
    """The schema's route template of a concrete path after /1.0."""
    path = path.split("?")[0]
    for template in SCHEMA["paths"]:
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path):
            return template
    raise AssertionError(f"{path} is not a route of OVH's schema")


def schema_of(ref_or_schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON schema for jsonschema: OpenAPI's nullable and readOnly made plain, $refs kept resolvable."""
    def plain(node: Any) -> Any:
        if isinstance(node, dict):
            out = {k: plain(v) for k, v in node.items()}
            if "$ref" in out:
                out["$ref"] = out["$ref"].replace("#/components/schemas/", "#/definitions/")
            if node.get("nullable") is True and "type" in out:
                out["type"] = [out["type"], "null"]
            return out
        if isinstance(node, list):
            return [plain(v) for v in node]
        return node

    return {**plain(ref_or_schema), "definitions": plain(SCHEMA["components"]["schemas"])}


class Recorder(requests.adapters.BaseAdapter):
    """Wraps the sandbox's in-process adapter and keeps (method, path, request body, status, answer)."""

    def __init__(self, inner: requests.adapters.BaseAdapter, calls: list[tuple[str, str, Any, int, Any]]) -> None:
        super().__init__()
        self._inner, self._calls = inner, calls

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        response = self._inner.send(request, **kwargs)
        body = request.body.decode() if isinstance(request.body, bytes) else request.body
        path = (request.path_url or "").removeprefix("/1.0")
        self._calls.append((request.method or "", path, json.loads(body) if body else None, response.status_code,
                            response.json() if response.content else None))
        return response

    def close(self) -> None:
        self._inner.close()


@pytest.fixture
def recorded() -> Iterator[list[tuple[str, str, Any, int, Any]]]:
    calls: list[tuple[str, str, Any, int, Any]] = []
    original = Operator.start

    async def start(self: Operator, **overrides: Any) -> Any:
        session = self.ovh.session
        self.ovh.session = lambda: _recording(session(), calls)  # type: ignore[method-assign]
        return await original(self, **overrides)

    Operator.start = start  # type: ignore[method-assign]
    try:
        yield calls
    finally:
        Operator.start = original  # type: ignore[method-assign]


def _recording(session: requests.Session, calls: list[tuple[str, str, Any, int, Any]]) -> requests.Session:
    for prefix, adapter in list(session.adapters.items()):
        session.mount(prefix, Recorder(adapter, calls))
    return session


async def test_every_call_and_answer_follows_the_published_schema(recorded: list[Any]) -> None:
    async with Operator(drift_interval=0.2) as op:
        grants = [{"bucket": "contract", "prefix": "p/", "access": "read"}]
        uid = op.create("app", {"grants": grants})["metadata"]["uid"]
        first = await op.wait_ready("app")
        op.patch("app", {"spec": {"roles": ["objectstore_operator", "backup_operator"]}})
        await op.wait_ready("app")
        op.core.delete_namespaced_secret("app-s3", "default")  # the secret is read again
        await op.assert_consistent(["app"])
        [user] = op.ovh_users(uid)
        op.ovh.project.handle("POST", f"/cloud/project/{op.ovh.service_name}/user/{user['id']}/s3Credentials", "")
        await op.assert_consistent(["app"])  # the stray key is listed and deleted
        op.delete("app")
        await op.wait_gone("app")
        assert first["status"]["userId"] == user["id"]

    seen = set()
    for method, path, body, status, answer in recorded:
        if path == "/auth/time":
            continue
        route = route_of(path)
        operation = SCHEMA["paths"][route].get(method.lower())
        assert operation is not None, f"{method} {route} is not in OVH's schema"
        seen.add((method, route))
        request_schema = (((operation.get("requestBody") or {}).get("content") or {}).get("application/json")
                          or {}).get("schema")
        if body is not None:
            assert request_schema is not None, f"{method} {route} takes no body"
            jsonschema.validate(body, schema_of(request_schema))
            assert set(body) <= set(schema_of(request_schema)["definitions"][
                request_schema["$ref"].rsplit("/", 1)[1]]["properties"]), f"{method} {route}: {sorted(body)}"
        if 200 <= status < 300:
            response_schema = ((operation["responses"]["200"].get("content") or {}).get("application/json")
                               or {}).get("schema")
            if response_schema is None:
                assert answer is None, f"{method} {route} answers nothing in OVH's schema"
            else:
                jsonschema.validate(answer, schema_of(response_schema))
    assert {m for m, _ in seen} == {"GET", "POST", "PUT", "DELETE"}
    assert len(seen) >= 11


def test_statuses_roles_and_rules_match_the_schema() -> None:
    schemas = SCHEMA["components"]["schemas"]
    published_statuses = set(schemas["cloud.user.UserStatusEnum"]["enum"])
    assert set(USER_STATUSES) == published_statuses
    assert set(GONE_STATUSES) | {"ok", "creating"} <= published_statuses
    published_roles = schemas["cloud.user.RoleEnum"]["enum"]
    assert list(DEFAULT_ROLES) == sorted(published_roles)
    crd = yaml.safe_load((ROOT / "crds" / "ovhobjectstorageusers.yaml").read_text())
    roles = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["roles"]
    assert roles["items"]["enum"] == sorted(published_roles)
    assert schemas["cloud.ProjectUserRoleUpdate"]["required"] == ["rolesIds"]
    assert schemas["cloud.user.User"]["properties"]["id"]["type"] == "integer"
