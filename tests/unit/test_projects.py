"""What an OVHProject says, and the credential sets the operator makes of Secrets: pure functions."""

from __future__ import annotations

from typing import Any

import pytest

from ovh_s3_operator.credentials import ENVIRONMENT, Credentials
from ovh_s3_operator.errors import OVHProjectError
from ovh_s3_operator.projects import ProjectSpec

APPLICATION = {"OVH_APPLICATION_KEY": "ak", "OVH_APPLICATION_SECRET": "as-secret", "OVH_CONSUMER_KEY": "ck-secret"}
OAUTH2 = {"OVH_CLIENT_ID": "cid", "OVH_CLIENT_SECRET": "cs-secret"}


@pytest.mark.parametrize(("values", "mode", "missing"), [
    (APPLICATION, "application", []),
    (OAUTH2, "oauth2", []),
    ({**APPLICATION, **OAUTH2}, "application", []),  # python-ovh takes one kind at a time: the application's
    ({"OVH_APPLICATION_KEY": "ak"}, None, ["OVH_APPLICATION_SECRET", "OVH_CONSUMER_KEY"]),
    ({"OVH_CLIENT_ID": "cid", "OVH_CONSUMER_KEY": "ck"}, None, ["OVH_CLIENT_SECRET"]),
    ({"OVH_APPLICATION_KEY": "  ", "OVH_APPLICATION_SECRET": "", "OVH_CONSUMER_KEY": "x"}, None,
     ["OVH_APPLICATION_KEY", "OVH_APPLICATION_SECRET"]),
    ({}, None, ["OVH_APPLICATION_KEY", "OVH_APPLICATION_SECRET", "OVH_CONSUMER_KEY"]),
])
def test_a_secret_holds_one_kind_of_credentials(values: dict[str, str], mode: str | None,
                                                missing: list[str]) -> None:
    credentials = Credentials.from_values("ovh-eu", values, "Secret ns/s")
    assert (credentials.auth_mode, credentials.missing()) == (mode, missing)


def test_credentials_never_show_their_secrets_and_tell_sets_apart() -> None:
    credentials = Credentials.from_values("ovh-eu", {**APPLICATION, **OAUTH2}, "Secret ns/s")
    shown = repr(credentials) + str(credentials) + credentials.fingerprint()
    assert not [value for value in ("as-secret", "ck-secret", "cs-secret") if value in shown]
    same = Credentials.from_values("ovh-eu", {**APPLICATION, **OAUTH2}, "Secret other/t")
    rotated = Credentials.from_values("ovh-eu", {**APPLICATION, "OVH_CONSUMER_KEY": "new", **OAUTH2}, "Secret ns/s")
    elsewhere = Credentials.from_values("ovh-ca", {**APPLICATION, **OAUTH2}, "Secret ns/s")
    assert credentials.fingerprint() == same.fingerprint()  # the same values, wherever they come from
    assert len({credentials.fingerprint(), rotated.fingerprint(), elsewhere.fingerprint()}) == 3
    assert Credentials("ovh-eu").source == ENVIRONMENT


def project(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p"}, "spec": {"serviceName": "0123abcd", "credentialsSecretRef": {"name": "s"},
                                                **spec}}


@pytest.mark.parametrize(("body", "parsed"), [
    (project(), ProjectSpec("0123abcd", "ovh-eu", "s", None)),
    (project(endpoint="ovh-ca", credentialsSecretRef={"name": "s", "namespace": "ops"}),
     ProjectSpec("0123abcd", "ovh-ca", "s", "ops")),
    (project(endpoint="https://proxy.example/1.0"), ProjectSpec("0123abcd", "https://proxy.example/1.0", "s", None)),
    (project(endpoint="http://127.0.0.1:8080/1.0"), ProjectSpec("0123abcd", "http://127.0.0.1:8080/1.0", "s", None)),
])
def test_an_ovh_project_spec(body: dict[str, Any], parsed: ProjectSpec) -> None:
    assert ProjectSpec.parse(body) == parsed


@pytest.mark.parametrize(("body", "field"), [
    (project(serviceName="../../me"), "spec.serviceName"),
    ({"metadata": {"name": "p"}, "spec": {"credentialsSecretRef": {"name": "s"}}}, "spec.serviceName"),
    (project(endpoint="http://proxy.example/1.0"), "spec.endpoint"),  # credentials in clear, off this host
    (project(endpoint="ovh-mars"), "spec.endpoint"),
    (project(credentialsSecretRef={}), "spec.credentialsSecretRef"),
    ({"metadata": {"name": "p"}}, "spec.serviceName"),
])
def test_an_ovh_project_spec_the_schema_would_refuse(body: dict[str, Any], field: str) -> None:
    with pytest.raises(OVHProjectError, match=field.replace(".", r"\.")):
        ProjectSpec.parse(body)
