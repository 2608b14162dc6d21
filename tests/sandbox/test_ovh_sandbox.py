"""The OVH API sandbox over real HTTP, driven by the real python-ovh client."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import itertools
import json
import logging
import math
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import ovh
import pytest
import requests
from ovh.exceptions import (
    APIError,
    BadParametersError,
    HTTPError,
    InvalidCredential,
    InvalidKey,
    InvalidResponse,
    NotCredential,
    NotGrantedCall,
    OAuth2FailureError,
    ResourceConflictError,
    ResourceNotFoundError,
)

from ovh_s3_operator_sandbox.background import BackgroundLoop
from ovh_s3_operator_sandbox.ovh.server import DEFAULT_ROLES, OVHSandbox

Connect = Callable[..., ovh.Client]
READ_POLICY = {
    "Statement": [
        {
            "Sid": "read",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:ListBucket"],
            "Resource": ["arn:aws:s3:::team-a", "arn:aws:s3:::team-a/*"],
        }
    ]
}


@pytest.fixture(scope="module")
def background() -> Iterator[BackgroundLoop]:
    with BackgroundLoop() as loop:
        yield loop


@pytest.fixture
def start_sandbox(background: BackgroundLoop, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., OVHSandbox]]:
    """Start sandboxes with the given options on the background loop; python-ovh accepts their URLs."""
    started: list[OVHSandbox] = []

    def start(tls: bool = False, **options: Any) -> OVHSandbox:
        sandbox = OVHSandbox(**options)
        background.run(sandbox.start(tls=tls))
        started.append(sandbox)
        monkeypatch.setitem(ovh.client.ENDPOINTS, sandbox.url, sandbox.url)
        return sandbox

    yield start
    for sandbox in started:
        background.run(sandbox.stop())


@pytest.fixture
def sandbox(start_sandbox: Callable[..., OVHSandbox]) -> OVHSandbox:
    return start_sandbox(activation=0.0, deletion=0.0)


def connect_to(sandbox: OVHSandbox, **overrides: Any) -> ovh.Client:
    """A python-ovh client for a sandbox whose URL is registered; keyword arguments override its settings."""
    settings = {**dataclasses.asdict(sandbox.credentials), "timeout": 5, **overrides}
    return ovh.Client(endpoint=sandbox.url, **settings)


@pytest.fixture
def connect(sandbox: OVHSandbox) -> Connect:
    return functools.partial(connect_to, sandbox)


@pytest.fixture
def client(connect: Connect) -> ovh.Client:
    return connect()


@pytest.fixture
def project(sandbox: OVHSandbox) -> str:
    return f"/cloud/project/{sandbox.service_name}"


def create_user(client: ovh.Client, project: str, **params: Any) -> dict[str, Any]:
    params.setdefault("roles", ["objectstore_operator"])
    user: dict[str, Any] = client.post(f"{project}/user", **params)
    return user


def snapshot(sandbox: OVHSandbox, user_id: int) -> dict[str, Any]:
    user = sandbox.project.user(user_id)
    assert user is not None
    return user


def status_of(error: APIError) -> int:
    status: int = error.response.status_code
    return status


def eventually(condition: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


# -- server and authentication --------------------------------------------------------------------------


def test_identity_and_env(sandbox: OVHSandbox) -> None:
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/1\.0", sandbox.url)
    assert re.fullmatch(r"[0-9a-f]{32}", sandbox.service_name)
    credentials = sandbox.credentials
    assert sandbox.env() == {
        "OVH_ENDPOINT": sandbox.url,
        "OVH_APPLICATION_KEY": credentials.application_key,
        "OVH_APPLICATION_SECRET": credentials.application_secret,
        "OVH_CONSUMER_KEY": credentials.consumer_key,
        "OVH_SERVICE_NAME": sandbox.service_name,
    }
    assert len({credentials.application_key, credentials.application_secret, credentials.consumer_key}) == 3
    assert sandbox.env(oauth2=True) == {
        "OVH_ENDPOINT": sandbox.url,
        "OVH_CLIENT_ID": sandbox.oauth2.client_id,
        "OVH_CLIENT_SECRET": sandbox.oauth2.client_secret,
        "OVH_SERVICE_NAME": sandbox.service_name,
    }
    assert sandbox.token_url == sandbox.url.removesuffix("/1.0") + "/auth/oauth2/token"
    assert OVHSandbox(service_name="p1").service_name == "p1"
    assert OVHSandbox().url == "https://ovh-sandbox.invalid/1.0"  # not started: the in-process endpoint
    assert OVHSandbox(name="other").url == "https://other.invalid/1.0"


def test_signed_call_lists_the_project(sandbox: OVHSandbox, client: ovh.Client) -> None:
    assert client.get("/cloud/project") == [sandbox.service_name]
    assert [(c.method, c.path, c.status) for c in sandbox.calls()] == [
        ("GET", "/auth/time", 200),
        ("GET", "/cloud/project", 200),
    ]


def test_auth_time_needs_no_signature(client: ovh.Client) -> None:
    server_time = client.get("/auth/time", _need_auth=False)
    assert isinstance(server_time, int)
    assert abs(server_time - time.time()) < 5


def test_query_string_is_signed_and_recorded(sandbox: OVHSandbox, client: ovh.Client, project: str) -> None:
    assert client.get(f"{project}/user", filter="a b") == []
    assert sandbox.calls()[-1].path == f"{project}/user?filter=a+b"


def test_unknown_application_key_is_invalid_key(sandbox: OVHSandbox, connect: Connect) -> None:
    with pytest.raises(InvalidKey):
        connect(application_key="unknownkey123456").get("/cloud/project")
    assert sandbox.calls()[-1].status == 403


def test_wrong_secret_is_an_invalid_signature(connect: Connect) -> None:
    with pytest.raises(BadParametersError, match="Invalid signature"):
        connect(application_secret="x" * 32).get("/cloud/project")


def test_unsigned_call_is_not_credential(client: ovh.Client) -> None:
    with pytest.raises(NotCredential):
        client.get("/cloud/project", _need_auth=False)


def test_stale_timestamp_is_refused(client: ovh.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    client.get("/cloud/project")  # learns the server time delta with the true clock
    monkeypatch.setattr(ovh.client, "time", SimpleNamespace(time=lambda: time.time() + 600))
    with pytest.raises(BadParametersError, match="out of time"):
        client.get("/cloud/project")


def test_revoked_consumer_key_is_invalid_credential(sandbox: OVHSandbox, client: ovh.Client, connect: Connect) -> None:
    old_key = sandbox.credentials.consumer_key
    client.get("/cloud/project")
    sandbox.revoke_consumer_key()
    with pytest.raises(InvalidCredential):
        client.get("/cloud/project")
    assert sandbox.env()["OVH_CONSUMER_KEY"] != old_key
    assert connect().get("/cloud/project") == [sandbox.service_name]


def test_other_project_unknown_path_and_wrong_method(client: ovh.Client, project: str) -> None:
    with pytest.raises(ResourceNotFoundError):
        client.get("/cloud/project/0123456789abcdef0123456789abcdef/user")
    with pytest.raises(ResourceNotFoundError, match="invalid"):
        client.get(f"{project}/storage")
    with pytest.raises(APIError) as wrong_method:
        client.put(f"{project}/user", description="x")
    assert status_of(wrong_method.value) == 405


async def test_serves_from_the_running_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox = OVHSandbox()
    await sandbox.start()
    try:
        monkeypatch.setitem(ovh.client.ENDPOINTS, sandbox.url, sandbox.url)
        client = connect_to(sandbox)
        assert await asyncio.to_thread(client.get, "/cloud/project") == [sandbox.service_name]
    finally:
        await sandbox.stop()


# -- several projects and credentials ---------------------------------------------------------------------


def test_an_account_with_two_projects_keeps_them_apart(sandbox: OVHSandbox, client: ovh.Client,
                                                       connect: Connect) -> None:
    second = sandbox.add_project()
    assert sorted(client.get("/cloud/project")) == sorted([sandbox.service_name, second.service_name])
    first_user = create_user(client, f"/cloud/project/{sandbox.service_name}")
    second_user = create_user(client, f"/cloud/project/{second.service_name}")
    assert first_user["id"] == second_user["id"]  # ids are per project
    assert [u["id"] for u in sandbox.project.users()] == [first_user["id"]] == [u["id"] for u in second.users()]
    with pytest.raises(ResourceNotFoundError, match="serviceName"):
        client.get("/cloud/project/0123456789abcdef0123456789abcdef/user")

    # A consumer key for the second project only, as the operator's access rules give it.
    keys = sandbox.add_consumer_key([("GET", "/cloud/project/{service}/user")], second.service_name)
    limited = connect(consumer_key=keys.consumer_key)
    assert [u["id"] for u in limited.get(f"/cloud/project/{second.service_name}/user")] == [second_user["id"]]
    with pytest.raises(NotGrantedCall):
        limited.get(f"/cloud/project/{sandbox.service_name}/user")
    renewed = sandbox.revoke_consumer_key(keys.consumer_key)
    with pytest.raises(InvalidCredential):
        limited.get(f"/cloud/project/{second.service_name}/user")
    assert connect(consumer_key=renewed.consumer_key).get(f"/cloud/project/{second.service_name}/user")
    assert client.get("/cloud/project")  # the sandbox's own key is another one


# -- OAuth2 -----------------------------------------------------------------------------------------------


def token_request(sandbox: OVHSandbox, form: dict[str, str] | str, **kwargs: Any) -> requests.Response:
    """A request to the token endpoint, in-process."""
    headers = {"Content-Type": "application/x-www-form-urlencoded", **kwargs.pop("headers", {})}
    return sandbox.session().post(sandbox.token_url, data=form, headers=headers, timeout=5, **kwargs)


def test_the_token_endpoint_follows_the_client_credentials_grant() -> None:
    sandbox = OVHSandbox(token_lifetime=120)
    client = sandbox.oauth2
    grant = {"grant_type": "client_credentials", "scope": "all"}
    basic = token_request(sandbox, grant, auth=(client.client_id, client.client_secret))
    assert basic.status_code == 200 and basic.headers["Cache-Control"] == "no-store"
    token = basic.json()
    assert token.keys() == {"access_token", "token_type", "expires_in", "scope"}
    assert (token["token_type"], token["expires_in"], token["scope"]) == ("Bearer", 120, "all")
    in_body = token_request(sandbox, {**grant, "client_id": client.client_id, "client_secret": client.client_secret})
    assert in_body.status_code == 200 and in_body.json()["access_token"] != token["access_token"]
    api = sandbox.session().get(f"{sandbox.url}/cloud/project", timeout=5,
                                headers={"Authorization": f"Bearer {token['access_token']}"})
    assert api.status_code == 200 and api.json() == [sandbox.service_name]


@pytest.mark.parametrize(("form", "auth", "status", "error"), [
    ({"grant_type": "client_credentials", "scope": "all"}, ("unknown", "x"), 401, "invalid_client"),
    ({"grant_type": "client_credentials", "scope": "all"}, "wrong secret", 401, "invalid_client"),
    ({"grant_type": "client_credentials", "scope": "all"}, None, 401, "invalid_client"),
    ({"grant_type": "client_credentials", "scope": "all", "client_id": "body"}, "basic", 400, "invalid_request"),
    ({"grant_type": "password", "scope": "all"}, "basic", 400, "unsupported_grant_type"),
    ({"grant_type": "client_credentials", "scope": "me"}, "basic", 400, "invalid_scope"),
    ('{"grant_type": "client_credentials"}', "basic", 400, "invalid_request"),
])
def test_the_token_endpoint_refuses_what_oauth2_refuses(form: dict[str, str] | str, auth: Any, status: int,
                                                         error: str) -> None:
    sandbox = OVHSandbox()
    client = sandbox.oauth2
    auth = {"basic": (client.client_id, client.client_secret),
            "wrong secret": (client.client_id, "x" * 32)}.get(auth, auth) if isinstance(auth, str) else auth
    headers = {"Content-Type": "application/json"} if isinstance(form, str) else {}
    answer = token_request(sandbox, form, auth=auth, headers=headers)
    assert answer.status_code == status
    assert answer.json()["error"] == error and answer.json()["error_description"]
    if error == "invalid_client":  # python-ovh's tests replay this answer of OVH's
        assert answer.json()["error_description"] == "ovhcloud oauth2 client does not exists"
        assert ("WWW-Authenticate" in answer.headers) is (auth is not None)
    assert sandbox.tokens_granted() == 0
    assert token_request(sandbox, {}, auth=auth, headers=headers).status_code != 200
    assert sandbox.session().get(sandbox.token_url, timeout=5).status_code == 405


def test_bearer_tokens_are_refused_once_ended_and_checked_against_the_rules() -> None:
    sandbox = OVHSandbox()
    token = token_request(sandbox, {"grant_type": "client_credentials", "scope": "all"},
                          auth=(sandbox.oauth2.client_id, sandbox.oauth2.client_secret)).json()["access_token"]
    session = sandbox.session()

    def call(path: str, bearer: str = token) -> requests.Response:
        return session.get(f"{sandbox.url}{path}", headers={"Authorization": f"Bearer {bearer}"}, timeout=5)

    assert call("/cloud/project").status_code == 200
    assert call("/cloud/project", "forged").status_code == 401
    limited = sandbox.add_oauth2_client([("GET", "/cloud/project/{service}/user")])
    narrow = token_request(sandbox, {"grant_type": "client_credentials", "scope": "all"},
                           auth=(limited.client_id, limited.client_secret)).json()["access_token"]
    assert call("/cloud/project", narrow).json()["errorCode"] == "NOT_GRANTED_CALL"
    assert sandbox.expire_tokens() == 2
    ended = call("/cloud/project")
    assert ended.status_code == 401
    assert ended.json() == {"class": "Client::Unauthorized", "message": "The access token is invalid or has expired"}
    assert ended.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    rotated = sandbox.rotate_oauth2_secret(sandbox.oauth2.client_id)
    refused = token_request(sandbox, {"grant_type": "client_credentials", "scope": "all"},
                            auth=(sandbox.oauth2.client_id, sandbox.oauth2.client_secret))
    assert refused.status_code == 401 and rotated.client_secret != sandbox.oauth2.client_secret


def test_python_ovh_gets_tokens_over_https(start_sandbox: Callable[..., OVHSandbox],
                                           monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    sandbox = start_sandbox(tls=True)
    assert sandbox.url.startswith("https://") and sandbox.ca_pem is not None
    (tmp_path / "ca.pem").write_bytes(sandbox.ca_pem)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "ca.pem"))
    monkeypatch.setitem(ovh.client.OAUTH2_TOKEN_URLS, sandbox.url, sandbox.token_url)
    client = ovh.Client(endpoint=sandbox.url, client_id=sandbox.oauth2.client_id,
                        client_secret=sandbox.oauth2.client_secret, timeout=5)
    assert client.get("/cloud/project") == [sandbox.service_name]
    assert client.get(f"/cloud/project/{sandbox.service_name}/user") == []
    assert [(c.method, c.path, c.status) for c in sandbox.calls()] == [
        ("POST", "/auth/oauth2/token", 200), ("GET", "/cloud/project", 200),
        ("GET", f"/cloud/project/{sandbox.service_name}/user", 200)]
    # python-ovh renews a token only once its expires_in has passed: one OVH ends earlier is refused.
    sandbox.expire_tokens()
    with pytest.raises(APIError) as refused:
        client.get("/cloud/project")
    assert status_of(refused.value) == 401
    wrong = ovh.Client(endpoint=sandbox.url, client_id=sandbox.oauth2.client_id, client_secret="x" * 32, timeout=5)
    with pytest.raises(OAuth2FailureError, match="invalid_client"):
        wrong.get("/cloud/project")


# -- users ------------------------------------------------------------------------------------------------


def test_create_user_answers_like_ovh(client: ovh.Client, project: str) -> None:
    user = create_user(client, project, description="backups for team-a")
    assert isinstance(user["id"], int)
    assert re.fullmatch(r"user-[A-Za-z0-9]{12}", user["username"])
    assert user["status"] == "creating"
    assert user["description"] == "backups for team-a"
    assert user["password"]
    assert time.strptime(user["creationDate"][:19], "%Y-%m-%dT%H:%M:%S")
    [role] = user["roles"]
    assert role["name"] == "objectstore_operator"
    assert set(role) == {"id", "name", "description", "permissions"}
    assert create_user(client, project)["id"] > user["id"]


def test_user_reads_round_trip_without_password(client: ovh.Client, project: str) -> None:
    created = create_user(client, project, description="d", roles=["objectstore_operator", "administrator"])
    fetched = client.get(f"{project}/user/{created['id']}")
    assert "password" not in fetched
    assert fetched["description"] == "d"
    assert [r["name"] for r in fetched["roles"]] == ["objectstore_operator", "administrator"]
    [listed] = client.get(f"{project}/user")
    assert listed == fetched


def test_legacy_single_role(client: ovh.Client, project: str) -> None:
    user = client.post(f"{project}/user", description="d", role="objectstore_operator")
    assert [r["name"] for r in user["roles"]] == ["objectstore_operator"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"roles": ["objectstore_operator", "superuser"]}, '"superuser"'),
        ({"roles": []}, "At least one role"),
        ({"description": "no roles"}, "At least one role"),
        ({"roles": "objectstore_operator"}, '"roles"'),
        ({"roles": ["objectstore_operator"], "name": "x"}, '"name"'),
    ],
)
def test_create_user_rejects_bad_parameters(
    sandbox: OVHSandbox, client: ovh.Client, project: str, params: dict[str, Any], message: str
) -> None:
    with pytest.raises(BadParametersError, match=message):
        client.post(f"{project}/user", **params)
    assert sandbox.project.users() == []


def test_user_becomes_ok_after_activation(sandbox: OVHSandbox, client: ovh.Client, project: str) -> None:
    sandbox.project.activation = 0.2
    started = time.monotonic()
    user_id = create_user(client, project)["id"]
    eventually(lambda: client.get(f"{project}/user/{user_id}")["status"] == "ok")
    assert time.monotonic() - started >= 0.2


def test_stuck_user_stays_creating_until_activation_changes(
    sandbox: OVHSandbox, client: ovh.Client, project: str
) -> None:
    sandbox.project.activation = math.inf
    user_id = create_user(client, project)["id"]
    assert client.get(f"{project}/user/{user_id}")["status"] == "creating"
    sandbox.project.activation = 0.0
    assert client.get(f"{project}/user/{user_id}")["status"] == "ok"


def test_delete_is_asynchronous_and_idempotent(sandbox: OVHSandbox, client: ovh.Client, project: str) -> None:
    sandbox.project.deletion = math.inf
    user_id = create_user(client, project)["id"]
    client.post(f"{project}/user/{user_id}/s3Credentials")
    assert client.delete(f"{project}/user/{user_id}") is None
    assert client.get(f"{project}/user/{user_id}")["status"] == "deleting"
    assert client.delete(f"{project}/user/{user_id}") is None
    sandbox.project.deletion = 0.0
    with pytest.raises(ResourceNotFoundError):
        client.get(f"{project}/user/{user_id}")
    with pytest.raises(ResourceNotFoundError):
        client.get(f"{project}/user/{user_id}/s3Credentials")
    with pytest.raises(ResourceNotFoundError):
        client.delete(f"{project}/user/{user_id}")
    assert sandbox.project.users() == []


def test_just_created_user_is_briefly_unknown(sandbox: OVHSandbox, client: ovh.Client, project: str) -> None:
    sandbox.project.visibility_delay = math.inf
    user_id = create_user(client, project)["id"]
    with pytest.raises(ResourceNotFoundError):
        client.get(f"{project}/user/{user_id}")
    with pytest.raises(ResourceNotFoundError):
        client.post(f"{project}/user/{user_id}/s3Credentials")
    assert client.get(f"{project}/user") == []
    assert [u["id"] for u in sandbox.project.users()] == [user_id]
    sandbox.project.visibility_delay = 0.0
    assert client.get(f"{project}/user/{user_id}")["id"] == user_id


# -- S3 credentials and policy ----------------------------------------------------------------------------


def test_s3_credentials_lifecycle(sandbox: OVHSandbox, client: ovh.Client, project: str) -> None:
    user_id = create_user(client, project)["id"]
    base = f"{project}/user/{user_id}/s3Credentials"
    created = client.post(base)
    assert re.fullmatch(r"[0-9a-f]{32}", created["access"])
    assert re.fullmatch(r"[0-9a-f]{32}", created["secret"])
    assert created["tenantId"] == sandbox.service_name
    listed = client.get(base)
    assert listed == [{"access": created["access"], "tenantId": sandbox.service_name, "userId": created["userId"]}]
    assert client.get(f"{base}/{created['access']}") == listed[0]
    assert client.post(f"{base}/{created['access']}/secret") == {"secret": created["secret"]}
    assert client.delete(f"{base}/{created['access']}") is None
    assert client.get(base) == []
    with pytest.raises(ResourceNotFoundError):
        client.delete(f"{base}/{created['access']}")
    with pytest.raises(ResourceNotFoundError):
        client.post(f"{base}/{created['access']}/secret")


def test_s3_credentials_need_an_ok_user(sandbox: OVHSandbox, client: ovh.Client, project: str) -> None:
    sandbox.project.activation = math.inf
    user_id = create_user(client, project)["id"]
    with pytest.raises(ResourceConflictError, match="not ready"):
        client.post(f"{project}/user/{user_id}/s3Credentials")
    assert snapshot(sandbox, user_id)["credentials"] == []


def test_policy_round_trip(sandbox: OVHSandbox, client: ovh.Client, project: str) -> None:
    user_id = create_user(client, project)["id"]
    with pytest.raises(ResourceNotFoundError):
        client.get(f"{project}/user/{user_id}/policy")
    document = json.dumps(READ_POLICY, indent=2)
    assert client.post(f"{project}/user/{user_id}/policy", policy=document) is None
    assert client.get(f"{project}/user/{user_id}/policy") == {"policy": document}
    assert snapshot(sandbox, user_id)["policy"] == document


@pytest.mark.parametrize(
    "document",
    [
        '{"Statement": []}',
        '{"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "s3:*", "Resource": "arn:aws:s3:::b"}]}',
        json.dumps(
            {
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "s3:ListBucket",
                        "Resource": "arn:aws:s3:::b",
                        "Condition": {"StringLike": {"s3:prefix": ["p/*"]}},
                    }
                ]
            }
        ),
    ],
)
def test_valid_policies_are_accepted(client: ovh.Client, project: str, document: str) -> None:
    user_id = create_user(client, project)["id"]
    client.post(f"{project}/user/{user_id}/policy", policy=document)
    assert client.get(f"{project}/user/{user_id}/policy")["policy"] == document


def _statement(**changes: Any) -> str:
    return json.dumps({"Statement": [{**READ_POLICY["Statement"][0], **changes}]})


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"policy": _statement(Action=["s3:GetObject", "s3:Foo"])}, 'unsupported action "s3:Foo"'),
        ({"policy": '{"Statement": ['}, "not valid JSON"),
        ({"policy": READ_POLICY}, "JSON string"),
        ({"policy": '{"Version": "2012-10-17"}'}, '"Statement" list'),
        ({"policy": "[]"}, "JSON object"),
        ({"policy": _statement(Effect="Maybe")}, '"Effect"'),
        ({"policy": _statement(Resource="team-a")}, 'unsupported resource "team-a"'),
        ({"policy": _statement(Action=[])}, '"Action"'),
        ({"policy": _statement(Principal="*")}, '"Principal"'),
        ({}, 'Missing parameter "policy"'),
    ],
)
def test_invalid_policies_are_bad_parameters(
    sandbox: OVHSandbox, client: ovh.Client, project: str, params: dict[str, Any], message: str
) -> None:
    user_id = create_user(client, project)["id"]
    with pytest.raises(BadParametersError, match=re.escape(message)):
        client.post(f"{project}/user/{user_id}/policy", **params)
    assert snapshot(sandbox, user_id)["policy"] is None


def test_roles_list(client: ovh.Client, project: str) -> None:
    document = client.get(f"{project}/role")
    assert [r["name"] for r in document["roles"]] == list(DEFAULT_ROLES)
    role_ids = {r["id"] for r in document["roles"]}
    assert len(role_ids) == len(DEFAULT_ROLES)
    for service in document["services"]:
        for permission in service["permissions"]:
            assert set(permission["roles"]) <= role_ids


def test_configured_roles_limit_user_creation(start_sandbox: Callable[..., OVHSandbox]) -> None:
    sandbox = start_sandbox(roles=["objectstore_operator"])
    client = connect_to(sandbox)
    project = f"/cloud/project/{sandbox.service_name}"
    assert [r["name"] for r in client.get(f"{project}/role")["roles"]] == ["objectstore_operator"]
    with pytest.raises(BadParametersError, match='"administrator"'):
        create_user(client, project, roles=["administrator"])


# -- inspection and out-of-band changes ------------------------------------------------------------------


def test_snapshots_hold_policy_and_secrets(sandbox: OVHSandbox, client: ovh.Client, project: str) -> None:
    user = create_user(client, project, description="d")
    credential = client.post(f"{project}/user/{user['id']}/s3Credentials")
    assert sandbox.project.users() == [
        {
            "id": user["id"],
            "username": user["username"],
            "description": "d",
            "roles": ["objectstore_operator"],
            "status": "ok",
            "policy": None,
            "credentials": [{"access": credential["access"], "secret": credential["secret"]}],
        }
    ]
    assert sandbox.project.user(user["id"] + 1) is None


def test_writes_and_clear_calls(sandbox: OVHSandbox, client: ovh.Client, project: str) -> None:
    user_id = create_user(client, project)["id"]
    access = client.post(f"{project}/user/{user_id}/s3Credentials")["access"]
    client.get(f"{project}/user/{user_id}")
    client.post(f"{project}/user/{user_id}/s3Credentials/{access}/secret")
    client.delete(f"{project}/user/{user_id}")
    assert [(c.method, c.path.removeprefix(project)) for c in sandbox.writes()] == [
        ("POST", "/user"),
        ("POST", f"/user/{user_id}/s3Credentials"),
        ("POST", f"/user/{user_id}/s3Credentials/{access}/secret"),
        ("DELETE", f"/user/{user_id}"),
    ]
    calls = sandbox.calls()
    assert all(a.at <= b.at for a, b in itertools.pairwise(calls))
    sandbox.clear_calls()
    assert sandbox.calls() == []


def test_console_changes(sandbox: OVHSandbox, client: ovh.Client, project: str) -> None:
    user_id = create_user(client, project)["id"]
    access = client.post(f"{project}/user/{user_id}/s3Credentials")["access"]
    sandbox.project.set_policy(user_id, "edited in the console")
    assert client.get(f"{project}/user/{user_id}/policy") == {"policy": "edited in the console"}
    sandbox.project.delete_credential(user_id, access)
    assert client.get(f"{project}/user/{user_id}/s3Credentials") == []
    sandbox.project.deletion = 60
    sandbox.project.set_user_status(user_id, "deleting")
    assert client.get(f"{project}/user/{user_id}")["status"] == "deleting"
    with pytest.raises(ResourceConflictError):
        client.post(f"{project}/user/{user_id}/s3Credentials")
    sandbox.project.delete_user_now(user_id)
    with pytest.raises(ResourceNotFoundError):
        client.get(f"{project}/user/{user_id}")
    with pytest.raises(KeyError):
        sandbox.project.delete_user_now(user_id)
    with pytest.raises(ValueError, match="status"):
        sandbox.project.set_user_status(user_id, "frozen")


# -- latency and rate limit -------------------------------------------------------------------------------


def test_latency_delays_every_answer(sandbox: OVHSandbox, client: ovh.Client) -> None:
    client.get("/cloud/project")
    sandbox.latency = 0.2
    started = time.monotonic()
    client.get("/cloud/project")
    assert time.monotonic() - started >= 0.2


def test_rate_limit_answers_429_without_effect(sandbox: OVHSandbox, client: ovh.Client, project: str) -> None:
    sandbox.rate_limit = 0.01  # a burst of one, then one call per 100 s
    client.get("/cloud/project")
    with pytest.raises(APIError) as refused:
        create_user(client, project)
    response = refused.value.response
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) >= 1
    assert response.json()["message"] == "Too many requests"
    assert sandbox.project.users() == []
    assert (sandbox.calls()[-1].method, sandbox.calls()[-1].status) == ("POST", 429)
    sandbox.rate_limit = None
    create_user(client, project)


# -- faults -----------------------------------------------------------------------------------------------


def test_status_fault_matches_method_and_path_once(sandbox: OVHSandbox, client: ovh.Client, project: str) -> None:
    fault = sandbox.add_fault(method="post", path=r"/user$", status=503)
    assert client.get(f"{project}/user") == []
    with pytest.raises(APIError) as failed:
        create_user(client, project)
    assert status_of(failed.value) == 503
    assert failed.value.response.json() == {"message": "injected 503 fault"}
    assert sandbox.project.users() == []
    assert fault.hits == 1
    assert fault.triggered.is_set()
    assert sandbox.calls()[-1].status == 503
    create_user(client, project)


def test_fault_times_and_removal(sandbox: OVHSandbox, client: ovh.Client) -> None:
    twice = sandbox.add_fault(path="^/cloud/project$", status=502, times=2)
    for _ in range(2):
        with pytest.raises(APIError):
            client.get("/cloud/project")
    client.get("/cloud/project")
    assert twice.hits == 2
    forever = sandbox.add_fault(path="^/cloud/project$", status=500, times=-1)
    for _ in range(3):
        with pytest.raises(APIError):
            client.get("/cloud/project")
    sandbox.remove_fault(forever)
    client.get("/cloud/project")
    sandbox.add_fault(path="^/cloud/project$", times=-1)
    sandbox.clear_faults()
    client.get("/cloud/project")
    with pytest.raises(ValueError, match="times"):
        sandbox.add_fault(times=0)


def test_fault_retry_after_header(sandbox: OVHSandbox, client: ovh.Client) -> None:
    sandbox.add_fault(path="^/cloud/project$", status=429, retry_after=7)
    with pytest.raises(APIError) as failed:
        client.get("/cloud/project")
    assert status_of(failed.value) == 429
    assert failed.value.response.headers["Retry-After"] == "7"


def test_non_json_fault_body_is_invalid_response(sandbox: OVHSandbox, client: ovh.Client) -> None:
    sandbox.add_fault(path="^/cloud/project$", status=502, body="<html>Bad Gateway</html>")
    with pytest.raises(InvalidResponse):
        client.get("/cloud/project")


def test_reset_drops_the_connection_before_processing(sandbox: OVHSandbox, client: ovh.Client, project: str) -> None:
    sandbox.add_fault(method="POST", reset=True)
    with pytest.raises(HTTPError):
        create_user(client, project)
    assert sandbox.project.users() == []
    assert sandbox.calls()[-1].status == 0
    create_user(client, project)


def test_after_fault_keeps_the_side_effect(sandbox: OVHSandbox, client: ovh.Client, project: str) -> None:
    sandbox.add_fault(method="POST", status=500, after=True)
    with pytest.raises(APIError):
        create_user(client, project)
    assert len(sandbox.project.users()) == 1


def test_lost_answer_after_processing(sandbox: OVHSandbox, client: ovh.Client, project: str) -> None:
    sandbox.add_fault(method="POST", reset=True, after=True)
    with pytest.raises(HTTPError):
        create_user(client, project)
    assert len(sandbox.project.users()) == 1


def test_delay_outlasts_the_client_timeout(sandbox: OVHSandbox, connect: Connect, project: str) -> None:
    impatient = connect(timeout=0.1)
    impatient.get("/cloud/project")
    sandbox.add_fault(method="POST", delay=0.4, after=True)
    with pytest.raises(HTTPError):
        create_user(impatient, project)
    eventually(lambda: sandbox.project.users())


def test_hang_until_released(sandbox: OVHSandbox, client: ovh.Client, project: str) -> None:
    fault = sandbox.add_fault(method="POST", hang=True)
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(create_user, client, project)
        assert fault.triggered.wait(5)
        assert len(sandbox.project.users()) == 1
        assert not pending.done()
        assert sandbox.calls()[-1].status == 0
        fault.release()
        with pytest.raises(HTTPError):
            pending.result(5)


def test_stop_releases_hung_requests(background: BackgroundLoop, sandbox: OVHSandbox, client: ovh.Client) -> None:
    fault = sandbox.add_fault(path="^/cloud/project$", hang=True)
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(client.get, "/cloud/project")
        assert fault.triggered.wait(5)
        background.run(sandbox.stop())
        with pytest.raises(HTTPError):
            pending.result(5)


# -- what is recorded and logged --------------------------------------------------------------------------


def test_no_secrets_in_calls_or_logs(
    sandbox: OVHSandbox, client: ovh.Client, connect: Connect, project: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="ovh_s3_operator_sandbox.ovh.server")
    user = create_user(client, project, description="d")
    credential = client.post(f"{project}/user/{user['id']}/s3Credentials")
    secret = client.post(f"{project}/user/{user['id']}/s3Credentials/{credential['access']}/secret")["secret"]
    client.post(f"{project}/user/{user['id']}/policy", policy=json.dumps(READ_POLICY))
    with pytest.raises(BadParametersError):
        connect(application_secret="wrong-secret-" + "x" * 19).get("/cloud/project")
    recorded = repr(sandbox.calls()) + caplog.text
    assert f"POST {project}/user -> 200" in caplog.text
    credentials = sandbox.credentials
    for value in (
        credentials.application_secret,
        credentials.consumer_key,
        "wrong-secret-",
        user["password"],
        secret,
        "arn:aws:s3:::team-a",
        "$1$",
    ):
        assert value not in recorded
