"""Every example of examples/ passes the CRD's schema and becomes Ready, and the files its templates
render are what the tools read (parsed as they parse them)."""

from __future__ import annotations

import configparser
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from ovh_s3_operator.model import GROUP, KIND, PLURAL, VERSION

from .conftest import Operator

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _ini(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(text)
    return parser


def _aws_credentials(text: str, values: dict[str, str], obj: dict[str, Any]) -> None:
    default = _ini(text)["default"]
    assert (default["aws_access_key_id"], default["aws_secret_access_key"]) == (
        values["AWS_ACCESS_KEY_ID"], values["AWS_SECRET_ACCESS_KEY"])


def _aws_config(text: str, values: dict[str, str], obj: dict[str, Any]) -> None:
    default = _ini(text)["default"]
    assert (default["region"], default["endpoint_url"]) == (values["AWS_REGION"], values["AWS_ENDPOINT_URL"])


def _rclone(text: str, values: dict[str, str], obj: dict[str, Any]) -> None:
    config = _ini(text)
    remote = config["ovh"]
    assert (remote["type"], remote["access_key_id"], remote["secret_access_key"], remote["endpoint"]) == (
        "s3", values["AWS_ACCESS_KEY_ID"], values["AWS_SECRET_ACCESS_KEY"], values["AWS_ENDPOINT_URL"])
    buckets = [grant["bucket"] for grant in obj["spec"]["grants"]]
    assert config.sections() == ["ovh", *buckets]
    assert [config[bucket]["remote"] for bucket in buckets] == [f"ovh:{bucket}" for bucket in buckets]


def _s3cmd(text: str, values: dict[str, str], obj: dict[str, Any]) -> None:
    default = _ini(text)["default"]
    assert (default["access_key"], default["secret_key"]) == (values["S3_ACCESS_KEY"], values["S3_SECRET_KEY"])
    assert f"https://{default['host_base']}" == values["S3_ENDPOINT"]
    assert default["bucket_location"] == values["S3_REGION"]


TEMPLATE_CHECKS: dict[str, Callable[[str, dict[str, str], dict[str, Any]], None]] = {
    "credentials": _aws_credentials, "config": _aws_config, "rclone.conf": _rclone, ".s3cfg": _s3cmd}
"""What each template entry of the examples must render to (a new kind of file needs its check here)."""


async def test_every_example_passes_the_schema_and_becomes_ready(op: Operator) -> None:
    examples = [body for path in sorted(EXAMPLES.glob("*.yaml")) for body in yaml.safe_load_all(path.read_text())]
    adopting = [body for body in examples if body["kind"] == KIND and ("userId" in body["spec"]
                                                                      or "projectRef" in body["spec"])]
    for body in adopting:  # the OVH user or project it names exists in a real account: the schema only
        op.kube.create_namespace(body["metadata"]["namespace"])
        op.custom.create_namespaced_custom_object(GROUP, VERSION, body["metadata"]["namespace"], PLURAL, body,
                                                  field_validation="Strict", dry_run="All")
    resources = [body for body in examples if body["kind"] == KIND and body not in adopting]
    for body in resources:  # checked against the CRD's schema, unknown fields refused (as kubectl apply does)
        op.custom.create_namespaced_custom_object(GROUP, VERSION, body["metadata"]["namespace"], PLURAL, body,
                                                  field_validation="Strict")
    names = [(body["metadata"]["namespace"], body["metadata"]["name"]) for body in resources]
    await op.assert_consistent(names)
    checked = set()
    for body in resources:
        obj = op.get(body["metadata"]["name"], body["metadata"]["namespace"])
        assert obj is not None
        values = op.secret_values(obj["status"]["secretName"], body["metadata"]["namespace"])
        assert values is not None
        for entry in body["spec"].get("secret", {}).get("template", {}):
            TEMPLATE_CHECKS[entry](values[entry], values, obj)
            checked.add(entry)
    assert checked == set(TEMPLATE_CHECKS)
