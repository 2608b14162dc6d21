"""The OVH port's retry policy and error mapping, with python-ovh's ``Client.call`` as the only seam."""

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import ovh.client as ovh_client
import ovh.exceptions as ovh_errors
import pytest
import requests
from pytest_mock import MockerFixture

from ovh_s3_operator.config import Settings
from ovh_s3_operator.credentials import Credentials
from ovh_s3_operator.errors import (
    OVHConflict,
    OVHCredentialsMissing,
    OVHCredentialsRejected,
    OVHNotFound,
    OVHProjectError,
    OVHRejected,
    OVHUnavailable,
)
from ovh_s3_operator.ovh_api import OVHClient, build_client, is_retryable, retry_after


def response(status: int, **headers: str) -> requests.Response:
    r = requests.Response()
    r.status_code = status
    r.headers.update(headers)
    return r


def api_error(status: int, cls: type[ovh_errors.APIError] = ovh_errors.APIError, **headers: str) -> Exception:
    return cls("boom", response=response(status, **headers))


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "OVH_ENDPOINT": "http://127.0.0.1:1/1.0", "OVH_APPLICATION_KEY": "ak", "OVH_APPLICATION_SECRET": "as",
        "OVH_CONSUMER_KEY": "ck", "OVH_SERVICE_NAME": "p1",
        "ovh_backoff_base": 0.001, "ovh_backoff_max": 0.01, "ovh_requests_per_second": 1000,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def executor(mocker: MockerFixture) -> ThreadPoolExecutor:
    # python-ovh reads the server clock (GET /auth/time) before its first signed call.
    mocker.patch("ovh.Client.time_delta", new_callable=mocker.PropertyMock, return_value=0)
    with ThreadPoolExecutor(2) as pool:
        yield pool


def connect_error() -> ovh_errors.HTTPError:
    """What python-ovh raises when nothing listens: the request never left."""
    try:
        requests.get("http://127.0.0.1:1/", timeout=5)
    except requests.exceptions.ConnectionError as cause:
        return ovh_errors.HTTPError("Low HTTP request failed error", cause)
    raise AssertionError("something listens on port 1")


@pytest.mark.parametrize(("exc", "idempotent", "expected"), [
    (api_error(429), False, True),
    (api_error(503), True, True),
    (api_error(503), False, False),  # a POST may have happened: never repeat it blindly
    (api_error(400, ovh_errors.BadParametersError), True, False),
    (api_error(403, ovh_errors.InvalidCredential), True, False),
    (ovh_errors.InvalidResponse("Failed to decode API response", ValueError()), True, True),
    (ovh_errors.HTTPError("Low HTTP request failed error", requests.exceptions.ReadTimeout()), True, True),
    (ovh_errors.HTTPError("Low HTTP request failed error", requests.exceptions.ReadTimeout()), False, False),
    (connect_error(), False, True),
])
def test_retry_classification(exc: Exception, idempotent: bool, expected: bool) -> None:
    assert is_retryable(exc, idempotent=idempotent) is expected


def test_retry_after_reads_seconds_and_dates() -> None:
    assert retry_after(api_error(429, **{"Retry-After": "3"})) == 3.0
    assert retry_after(api_error(429, **{"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})) == 0.0
    assert retry_after(api_error(429, **{"Retry-After": "9999"})) == 120.0
    assert retry_after(api_error(429)) is None


async def test_call_retries_429_then_succeeds(mocker: MockerFixture, executor: ThreadPoolExecutor) -> None:
    client = OVHClient(settings(), executor)
    call = mocker.patch.object(client.connection.client, "call", side_effect=[api_error(429), api_error(502), ["p1"]])
    assert await client.list_projects() == ["p1"]
    assert call.call_count == 3


async def test_call_gives_up_after_max_attempts(mocker: MockerFixture, executor: ThreadPoolExecutor) -> None:
    client = OVHClient(settings(ovh_max_attempts=3), executor)
    call = mocker.patch.object(client.connection.client, "call", side_effect=api_error(503))
    with pytest.raises(OVHUnavailable, match=r"OVH answered GET /cloud/project with HTTP 503 3 times"):
        await client.list_projects()
    assert call.call_count == 3


async def test_create_is_not_repeated_after_an_ambiguous_failure(
        mocker: MockerFixture, executor: ThreadPoolExecutor) -> None:
    client = OVHClient(settings(), executor)
    call = mocker.patch.object(client.connection.client, "call", side_effect=api_error(502))
    with pytest.raises(OVHUnavailable, match=r"with HTTP 502; the operator keeps retrying"):  # not "5 times"
        await client.create_user("d", ("objectstore_operator",))
    assert call.call_count == 1


@pytest.mark.parametrize(("exc", "error", "message"), [
    (api_error(403, ovh_errors.InvalidKey), OVHCredentialsRejected, "check OVH_APPLICATION_KEY"),
    (api_error(403, ovh_errors.InvalidCredential), OVHCredentialsRejected, "check OVH_CONSUMER_KEY"),
    (api_error(403, ovh_errors.NotGrantedCall), OVHCredentialsRejected, "may not call GET"),
    (ovh_errors.BadParametersError("Invalid signature", response=response(400)), OVHCredentialsRejected,
     "check OVH_APPLICATION_SECRET"),
    (ovh_errors.BadParametersError("Invalid role", response=response(400)), OVHRejected, "Invalid role"),
    (api_error(409, ovh_errors.ResourceConflictError), OVHConflict, "409"),
])
async def test_errors_are_translated(mocker: MockerFixture, executor: ThreadPoolExecutor, exc: Exception,
                                     error: type[Exception], message: str) -> None:
    client = OVHClient(settings(), executor)
    call = mocker.patch.object(client.connection.client, "call", side_effect=exc)
    with pytest.raises(error, match=message):
        await client.list_users()
    assert call.call_count == 1


async def test_404_means_absent(mocker: MockerFixture, executor: ThreadPoolExecutor) -> None:
    client = OVHClient(settings(), executor)
    mocker.patch.object(client.connection.client, "call", side_effect=api_error(404, ovh_errors.ResourceNotFoundError))
    assert await client.get_user(7) is None
    assert await client.get_policy(7) is None
    with pytest.raises(OVHNotFound, match="OVH answered 404 to GET /cloud/project/p1/user/7/s3Credentials"):
        await client.list_s3_credentials(7)
    with pytest.raises(OVHProjectError, match=r"no cloud project 'p1'.*check OVH_SERVICE_NAME"):
        await client.list_users()


async def test_missing_credentials_fail_every_call(executor: ThreadPoolExecutor) -> None:
    client = OVHClient(settings(OVH_APPLICATION_KEY=None, OVH_CONSUMER_KEY=None), executor)
    assert client.configuration_error is not None
    with pytest.raises(OVHCredentialsMissing, match="set OVH_APPLICATION_KEY, OVH_CONSUMER_KEY"):
        await client.list_users()


async def test_service_name_defaults_to_the_only_project(mocker: MockerFixture, executor: ThreadPoolExecutor) -> None:
    client = OVHClient(settings(OVH_SERVICE_NAME=None), executor)
    call = mocker.patch.object(client.connection.client, "call", side_effect=[["abc"], []])
    assert await client.list_users() == []
    assert call.call_args_list[1].args[:2] == ("GET", "/cloud/project/abc/user")


async def test_service_name_required_with_several_projects(
        mocker: MockerFixture, executor: ThreadPoolExecutor) -> None:
    client = OVHClient(settings(OVH_SERVICE_NAME=None), executor)
    mocker.patch.object(client.connection.client, "call", return_value=["a", "b"])
    with pytest.raises(OVHProjectError, match=r"has 2 cloud projects \(a, b\); set OVH_SERVICE_NAME"):
        await client.list_users()


async def test_user_listing_can_be_shared(mocker: MockerFixture, executor: ThreadPoolExecutor) -> None:
    client = OVHClient(settings(), executor)
    call = mocker.patch.object(client.connection.client, "call", return_value=[])
    await client.list_users(max_age=60)
    await client.list_users(max_age=60)
    await client.list_users()
    assert call.call_count == 2


def build(**overrides: Any) -> Any:
    return build_client(Credentials.from_settings(settings(**overrides)), 5.0)


OAUTH2 = {"OVH_APPLICATION_KEY": None, "OVH_APPLICATION_SECRET": None, "OVH_CONSUMER_KEY": None,
          "OVH_CLIENT_ID": "cid", "OVH_CLIENT_SECRET": "csecret"}


def test_oauth2_credentials_build_an_oauth2_client() -> None:
    client = build(OVH_ENDPOINT="ovh-eu", **OAUTH2)
    assert client._oauth2.token_url == "https://www.ovh.com/auth/oauth2/token"  # python-ovh's, for ovh-eu
    assert client._application_key is None


def test_oauth2_at_a_url_asks_for_tokens_beside_the_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ovh_client, "ENDPOINTS", dict(ovh_client.ENDPOINTS))
    monkeypatch.setattr(ovh_client, "OAUTH2_TOKEN_URLS", dict(ovh_client.OAUTH2_TOKEN_URLS))
    client = build(OVH_ENDPOINT="https://proxy.example/ovh/1.0", **OAUTH2)
    assert client._oauth2.token_url == "https://proxy.example/ovh/auth/oauth2/token"


def test_oauth2_needs_an_endpoint_with_a_token_url() -> None:
    with pytest.raises(OVHCredentialsMissing, match="OAuth2 authentication is not compatible"):
        build(OVH_ENDPOINT="kimsufi-eu", **OAUTH2)


def test_unknown_endpoint_name_is_reported() -> None:
    with pytest.raises(OVHCredentialsMissing, match="OVH_ENDPOINT 'ovh-mars' is neither a URL"):
        build(OVH_ENDPOINT="ovh-mars")


def test_credentials_never_mix_with_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # python-ovh fills what it is not given from OVH_* variables: an OVHProject's keys must not meet the
    # operator's own service account there (nor the other way round).
    monkeypatch.setenv("OVH_CLIENT_ID", "env-cid")
    monkeypatch.setenv("OVH_CLIENT_SECRET", "env-csecret")
    monkeypatch.setenv("OVH_APPLICATION_KEY", "env-ak")
    application = build_client(Credentials.from_values("ovh-eu", {"OVH_APPLICATION_KEY": "ak",
                                                                  "OVH_APPLICATION_SECRET": "as",
                                                                  "OVH_CONSUMER_KEY": "ck"}, "Secret ns/s"), 5.0)
    assert (application._application_key, application._client_id, application._oauth2) == ("ak", None, None)
    oauth2 = build_client(Credentials.from_values("ovh-eu", {"OVH_CLIENT_ID": "cid", "OVH_CLIENT_SECRET": "cs"},
                                                  "Secret ns/s"), 5.0)
    assert (oauth2._client_id, oauth2._application_key) == ("cid", None)
    assert ovh_client.config.ConfigurationManager().get("ovh-eu", "client_id") == "env-cid"  # python-ovh as it was
